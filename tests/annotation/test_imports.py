"""Round import from manifests and folders: the good cases, and all-or-nothing refusals that name the line."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from annotation.demo_media import build_demo_manifest, write_mp4
from annotation.models import Comparison, Prompt, Round, Sample
from annotation.services.imports import ImportRefused, round_import, round_import_check
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def _counts() -> tuple[int, int, int, int]:
    return Round.objects.count(), Prompt.objects.count(), Sample.objects.count(), Comparison.objects.count()


def _media_files(root: Path) -> set[Path]:
    return {p for p in Path(root).rglob("*") if p.is_file()}


def _png(path: Path, colour=(200, 40, 40), size=(24, 16), fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format=fmt)
    return path


def _mp4(path: Path, frames: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((frames, 16, 16, 3), 230, dtype=np.uint8)
    for t in range(frames):
        pixels[t, 4:10, t : t + 6] = (30, 30, 200)
    write_mp4(path, pixels, fps=8)
    return path


def _write_manifest(folder: Path, lines: list) -> Path:
    manifest = folder / "manifest.jsonl"
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    manifest.write_text("\n".join(text) + "\n", encoding="utf-8")
    return manifest


def _image_line(prompt: str, a: str = "img/a.png", b: str = "img/b.png", **extra) -> dict:
    return {"prompt": prompt, "samples": [{"model": "m1", "image": a}, {"model": "m2", "image": b}], **extra}


def _video_line(prompt: str, a: str = "vid/a.mp4", b: str = "vid/b.mp4") -> dict:
    return {"prompt": prompt, "samples": [{"model": "m1", "video": a}, {"model": "m2", "video": b}]}


# --- good imports -----------------------------------------------------------------------------


@needs_ffmpeg
@pytest.mark.parametrize(
    ("modality", "files_per_sample"),
    [("image", 1), ("video", 2), ("multiview", 6)],  # a video's poster is stored too
)
def test_demo_manifest_imports_for_each_modality(tmp_path, _media_root, modality, files_per_sample):
    campaign = CampaignFactory(modality=modality, overlap=2)
    manifest = build_demo_manifest(tmp_path / "demo", modality=modality, n_prompts=3, samples_per_prompt=3)
    assert round_import_check(campaign=campaign, source=manifest)  # the check alone writes nothing
    assert _counts() == (0, 0, 0, 0)

    round_ = round_import(campaign=campaign, source=manifest)

    assert (round_.number, round_.status, round_.samples_per_prompt) == (1, Round.Status.OPEN, 3)
    assert round_.prompts.count() == 3
    assert round_.samples.count() == 9
    assert round_.comparisons.count() == 9  # three pairs per prompt
    assert set(round_.comparisons.values_list("overlap", flat=True)) == {2}
    assert sorted(round_.model_versions.values_list("name", flat=True)) == ["demo-a", "demo-b", "demo-c"]
    gold = round_.comparisons.get(is_gold=True)
    assert gold.gold_answer == "first"
    assert gold.prompt.text == round_.prompts.order_by("id").first().text
    assert (gold.sample_first.model_version.name, gold.sample_second.model_version.name) == ("demo-a", "demo-b")
    first = round_.prompts.order_by("id").first()
    assert first.metadata["spec"]["type"]
    stored = set()
    for sample in round_.samples.all():
        expected_kind = {"image": "image", "video": "video", "multiview": "views"}[modality]
        assert sample.kind == expected_kind
        assert sample.seed is not None
        names = list(sample.files) + ([sample.poster] if sample.poster else [])
        assert len(names) == files_per_sample
        for name in names:
            assert name.startswith(f"rounds/{round_.id}/")
            assert default_storage.exists(name)
            stored.add(Path(_media_root) / name)
        expected_mime = "video/mp4" if modality == "video" else "image/png"
        assert sample.mime_types == [expected_mime] * len(sample.files)
    assert _media_files(_media_root) == stored


def test_second_import_gets_the_next_round_number(tmp_path):
    campaign = CampaignFactory(modality="image")
    manifest = build_demo_manifest(tmp_path, modality="image", n_prompts=1, samples_per_prompt=2)
    assert round_import(campaign=campaign, source=manifest).number == 1
    assert round_import(campaign=campaign, source=tmp_path).number == 2  # a folder holding manifest.jsonl


def test_stored_name_follows_content_not_extension(tmp_path, _media_root):
    campaign = CampaignFactory(modality="image")
    _png(tmp_path / "img/a.jpg")  # really a PNG
    _png(tmp_path / "img/b.png", fmt="WEBP")  # really a WebP
    manifest = _write_manifest(tmp_path, [_image_line("p", a="img/a.jpg")])
    round_ = round_import(campaign=campaign, source=manifest)
    by_model = {s.model_version.name: s for s in round_.samples.all()}
    assert by_model["m1"].mime_types == ["image/png"] and by_model["m1"].files[0].endswith(".png")
    assert by_model["m2"].mime_types == ["image/webp"] and by_model["m2"].files[0].endswith(".webp")


def test_pairs_are_capped_and_gold_pair_kept(tmp_path):
    campaign = CampaignFactory(modality="image")
    manifest = build_demo_manifest(tmp_path, modality="image", n_prompts=2, samples_per_prompt=5)
    round_ = round_import(campaign=campaign, source=manifest, max_pairs_per_prompt=3)
    assert round_.comparisons.count() == 6
    assert round_.comparisons.filter(is_gold=True).count() == 1


def test_folder_layout_images(tmp_path, _media_root):
    campaign = CampaignFactory(modality="image")
    for name, colour in [("p1", (200, 0, 0)), ("p2", (0, 0, 200))]:
        folder = tmp_path / "src" / name
        _png(folder / "model-x.png", colour)
        _png(folder / "model-y.jpg", colour, fmt="JPEG")
        (folder / "prompt.txt").write_text(f"a {name} square\n", encoding="utf-8")
    (tmp_path / "src/p1/metadata.json").write_text('{"colour": "red"}', encoding="utf-8")

    round_ = round_import(campaign=campaign, source=tmp_path / "src")

    prompts = list(round_.prompts.order_by("text"))
    assert [p.text for p in prompts] == ["a p1 square", "a p2 square"]
    assert prompts[0].metadata == {"colour": "red"}
    assert round_.samples.count() == 4 and round_.comparisons.count() == 2
    mimes = sorted(m for s in round_.samples.all() for m in s.mime_types)
    assert mimes == ["image/jpeg", "image/jpeg", "image/png", "image/png"]
    assert len(_media_files(_media_root)) == 4


def test_folder_layout_multiview(tmp_path, _media_root):
    campaign = CampaignFactory(modality="multiview")
    folder = tmp_path / "src/p1"
    for model in ("m1", "m2"):
        for k in range(3):
            _png(folder / model / f"view_{k:02d}.png", (40 * k, 100, 100))
    (folder / "prompt.txt").write_text("a cube", encoding="utf-8")
    round_ = round_import(campaign=campaign, source=tmp_path / "src")
    sample = round_.samples.get(model_version__name="m1")
    assert sample.kind == "views" and len(sample.files) == 3
    assert len(_media_files(_media_root)) == 6


@needs_ffmpeg
def test_folder_layout_video_with_poster(tmp_path, _media_root):
    campaign = CampaignFactory(modality="video")
    folder = tmp_path / "src/p1"
    _mp4(folder / "m1.mp4")
    _mp4(folder / "m2.mp4")
    (folder / "m1.png").rename(folder / "m1.poster.png")
    (folder / "m2.png").unlink()
    (folder / "prompt.txt").write_text("a moving square", encoding="utf-8")
    round_ = round_import(campaign=campaign, source=tmp_path / "src")
    by_model = {s.model_version.name: s for s in round_.samples.all()}
    assert by_model["m1"].poster and default_storage.exists(by_model["m1"].poster)
    assert by_model["m2"].poster == ""
    assert by_model["m1"].mime_types == ["video/mp4"]
    assert len(_media_files(_media_root)) == 3


# --- refusals: the line is named, and nothing is written ---------------------------------------


@pytest.fixture
def image_campaign(tmp_path):
    """An image campaign that already has one round, so 'nothing written' is not trivially true."""
    campaign = CampaignFactory(modality="image")
    round_import(
        campaign=campaign,
        source=build_demo_manifest(tmp_path / "first", modality="image", n_prompts=1, samples_per_prompt=2),
    )
    return campaign


@pytest.fixture
def src(tmp_path) -> Path:
    folder = tmp_path / "src"
    _png(folder / "img/a.png", (200, 0, 0))
    _png(folder / "img/b.png", (0, 0, 200))
    (folder / "img/fake.png").write_text("just some words, not pixels\n", encoding="utf-8")
    return folder


def _assert_refused(campaign, source: Path, media_root: Path, *expected: str) -> str:
    before, files = _counts(), _media_files(media_root)
    with pytest.raises(ImportRefused) as caught:
        round_import(campaign=campaign, source=source)
    message = caught.value.message
    assert message.startswith("Import refused, nothing was written:")
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"
    assert _counts() == before
    assert _media_files(media_root) == files
    return message


GOOD_1, GOOD_2 = _image_line("a red square"), _image_line("a blue square", a="img/b.png", b="img/a.png")


@pytest.mark.parametrize(
    ("third_line", "expected"),
    [
        (
            _image_line("x", b="img/missing.png"),
            ["line 3, sample 1: file 'img/missing.png' not found"],
        ),
        (
            _image_line("x", a="img/fake.png"),
            ["line 3, sample 0: fake.png: not a PNG/JPEG/WebP image (content looks like text)"],
        ),
        ({**_image_line("x"), "colour": "red"}, ["line 3: unknown column 'colour'"]),
        (
            {
                "prompt": "x",
                "samples": [
                    {"model": "m1", "image": "img/a.png", "colour": "red"},
                    {"model": "m2", "image": "img/b.png"},
                ],
            },
            ["line 3, sample 0: unknown column 'colour'"],
        ),
        ('{"prompt": "x", "samples": [', ["line 3: not valid JSON"]),
        ("[1, 2, 3]", ["line 3: each line must be a JSON object"]),
        (_image_line("x", a="../outside.png"), ["line 3, sample 0: path '../outside.png' must be relative"]),
        (_image_line("x", a="/etc/hostname"), ["line 3, sample 0: path '/etc/hostname' must be relative"]),
        (_image_line("x", a="img/a\x00.png"), ["line 3, sample 0: path", "not a usable file name"]),
        (_video_line("x", a="img/a.png", b="img/b.png"), ["line 3, sample 0: this campaign compares image"]),
        (
            {"prompt": "x", "samples": [{"model": "m1", "image": "img/a.png"}]},
            ["line 3: 'samples' must list at least two"],
        ),
        ({"prompt": "  ", "samples": []}, ["line 3: 'prompt' must be non-empty text"]),
        (_image_line("x", gold={"pair": [0, 5], "answer": "first"}), ["line 3: 'gold' must be"]),
        (_image_line("x", gold={"pair": [0, 1], "answer": "left"}), ["line 3: 'gold' must be"]),
        (
            {
                "prompt": "x",
                "samples": [{"model": "m1", "seed": True, "image": "img/a.png"}, {"model": "m2", "image": "img/b.png"}],
            },
            ["line 3, sample 0: 'seed' must be an integer"],
        ),
        (
            {
                "prompt": "x",
                "samples": [
                    {"model": "m1", "seed": 2**70, "image": "img/a.png"},
                    {"model": "m2", "image": "img/b.png"},
                ],
            },
            ["line 3, sample 0: 'seed' must be an integer"],
        ),
        (
            {"prompt": "x", "samples": [{"model": "", "image": "img/a.png"}, {"model": "m2", "image": "img/b.png"}]},
            ["line 3, sample 0: 'model' must be a non-empty label"],
        ),
        (
            {
                "prompt": "x",
                "samples": [
                    {"model": "m1", "image": "img/a.png", "poster": "img/b.png"},
                    {"model": "m2", "image": "img/b.png"},
                ],
            },
            ["line 3, sample 0: 'poster' is only for videos"],
        ),
    ],
    ids=[
        "missing-file",
        "text-as-png",
        "unknown-line-column",
        "unknown-sample-column",
        "invalid-json",
        "not-an-object",
        "path-escapes",
        "absolute-path",
        "nul-in-path",
        "wrong-modality-key",
        "one-sample",
        "empty-prompt",
        "gold-index",
        "gold-answer",
        "bool-seed",
        "huge-seed",
        "empty-model",
        "poster-on-image",
    ],
)
def test_bad_manifest_line_is_refused_and_nothing_written(image_campaign, src, _media_root, third_line, expected):
    (src.parent / "outside.png").write_bytes((src / "img/a.png").read_bytes())
    manifest = _write_manifest(src, [GOOD_1, GOOD_2, third_line])
    _assert_refused(image_campaign, manifest, _media_root, *expected)


def test_every_problem_is_listed_at_once(image_campaign, src, _media_root):
    manifest = _write_manifest(
        src, [GOOD_1, "not json", _image_line("x", a="img/fake.png"), {"prompt": "y", "colour": 1}]
    )
    message = _assert_refused(image_campaign, manifest, _media_root, "line 2:", "line 3, sample 0:", "line 4:")
    assert "line 1" not in message


def test_non_utf8_manifest_line_is_refused(image_campaign, src, _media_root):
    manifest = _write_manifest(src, [GOOD_1])
    with manifest.open("ab") as handle:
        handle.write(b'{"prompt": "caf\xe9"}\n')
    _assert_refused(image_campaign, manifest, _media_root, "line 2: not UTF-8 text")


def test_empty_manifest_and_missing_source_are_refused(image_campaign, src, _media_root):
    _assert_refused(image_campaign, _write_manifest(src, ["", "  "]), _media_root, "the manifest is empty")
    _assert_refused(image_campaign, src / "nope.jsonl", _media_root, "no such file or folder")


def test_folder_without_prompt_txt_is_refused(image_campaign, tmp_path, _media_root):
    _png(tmp_path / "src/p1/m1.png")
    _png(tmp_path / "src/p1/m2.png")
    (tmp_path / "src/p1/prompt.txt").write_text("ok", encoding="utf-8")
    _png(tmp_path / "src/p2/m1.png")
    _assert_refused(image_campaign, tmp_path / "src", _media_root, "folder 'p2': missing prompt.txt")


@needs_ffmpeg
class TestVideoRefusals:
    @pytest.fixture
    def campaign(self, tmp_path):
        campaign = CampaignFactory(modality="video")
        first = build_demo_manifest(tmp_path / "first", modality="video", n_prompts=1, samples_per_prompt=2)
        round_import(campaign=campaign, source=first)
        return campaign

    @pytest.fixture
    def vsrc(self, src):
        _mp4(src / "vid/a.mp4")
        _mp4(src / "vid/b.mp4")
        data = (src / "vid/a.mp4").read_bytes()
        (src / "vid/cut.mp4").write_bytes(data[: len(data) // 2])
        return src

    def test_png_given_as_video(self, campaign, vsrc, _media_root):
        manifest = _write_manifest(vsrc, [_video_line("a"), _video_line("b"), _video_line("c", b="img/a.png")])
        _assert_refused(
            campaign, manifest, _media_root, "line 3, sample 1: a.png: expected a video, found an image (image/png)"
        )

    def test_truncated_video(self, campaign, vsrc, _media_root):
        manifest = _write_manifest(vsrc, [_video_line("a"), _video_line("b"), _video_line("c", a="vid/cut.mp4")])
        _assert_refused(campaign, manifest, _media_root, "line 3, sample 0: cut.mp4: video is truncated or unreadable")

    def test_video_as_poster(self, campaign, vsrc, _media_root):
        third = _video_line("c")
        third["samples"][0]["poster"] = "vid/b.mp4"
        manifest = _write_manifest(vsrc, [_video_line("a"), _video_line("b"), third])
        _assert_refused(campaign, manifest, _media_root, "line 3, sample 0: b.mp4: expected an image, found a video")

    def test_image_line_in_video_campaign(self, campaign, vsrc, _media_root):
        manifest = _write_manifest(vsrc, [_video_line("a"), _video_line("b"), _image_line("c")])
        _assert_refused(campaign, manifest, _media_root, "line 3, sample 0: this campaign compares video")


# --- the management command -------------------------------------------------------------------


def test_import_round_command_success(tmp_path, capsys):
    campaign = CampaignFactory(modality="image", name="Shapes")
    manifest = build_demo_manifest(tmp_path, modality="image", n_prompts=2, samples_per_prompt=2)
    call_command("import_round", str(manifest), campaign=campaign.id)
    out = capsys.readouterr().out
    assert "Imported round 1 of 'Shapes': 2 prompts, 4 samples, 2 comparisons." in out


def test_import_round_command_reports_bad_input(image_campaign, src, _media_root):
    manifest = _write_manifest(src, [GOOD_1, GOOD_2, _image_line("x", b="img/missing.png")])
    before, files = _counts(), _media_files(_media_root)
    with pytest.raises(
        CommandError,
        match=r"(?s)Import refused, nothing was written:.*line 3, sample 1: file 'img/missing.png' not found",
    ):
        call_command("import_round", str(manifest), campaign=image_campaign.id)
    assert _counts() == before and _media_files(_media_root) == files


def test_import_round_command_unknown_campaign(tmp_path):
    with pytest.raises(CommandError, match="No campaign with id 999999"):
        call_command("import_round", str(tmp_path), campaign=999999)
