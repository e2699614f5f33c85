"""docker-compose.yml parses and names the services and the commands they run (no Docker engine here)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_names_services_and_commands():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "gpu-worker"} <= set(services)
    assert "gunicorn webapp.wsgi" in " ".join(services["web"]["command"])
    worker = services["worker"]["command"]
    assert worker[:4] == ["celery", "-A", "workers", "worker"] and worker[worker.index("-Q") + 1] == "default"
    gpu = services["gpu-worker"]["command"]
    assert gpu[gpu.index("-Q") + 1] == "gpu"
    assert gpu[gpu.index("--concurrency") + 1] == "1" and gpu[gpu.index("--prefetch-multiplier") + 1] == "1"
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    for name in ("web", "worker", "gpu-worker"):
        assert (ROOT / services[name]["build"]["dockerfile"]).is_file()


def test_web_image_installs_no_ml_stack():
    lines = (ROOT / "requirements" / "web.txt").read_text().lower().splitlines()
    names = {line.split("==")[0].split("[")[0].strip() for line in lines if line.strip() and not line.startswith("#")}
    assert not names & {"torch", "diffusers", "transformers", "peft", "accelerate"}


def test_requirements_are_pinned():
    for name in ("web.txt", "ml.txt"):
        for line in (ROOT / "requirements" / name).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r")):
                assert "==" in line, f"{name}: {line} is not pinned"
