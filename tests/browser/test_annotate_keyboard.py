"""The annotate page driven by the keyboard alone, in Debian's chromium through Playwright.

Each test logs in through the login form, opens a round and judges with keys only, then checks the
rows the server stored: the choice mapped through the left/right swap the lease recorded, the
per-criterion choices, the time on task. Videos must really play, in sync; turntables must share
one view index. If annotate.js is broken, these fail.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from annotation.models import Assignment, Campaign, Judgment
from annotation.services.imports import round_import
from tests.factories import CampaignFactory, UserFactory, add_member, make_round

# Playwright's sync API runs an event loop in this thread; the ORM calls below are still plain
# blocking calls made between browser steps.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("transactional_db")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pw-for-tests-only"
FPS = 8
VISIBLE_PAIR = "section.pair:not([hidden])"
VIEW_TO_CANONICAL = {"left": "first", "right": "second", "tie": "tie", "both_bad": "both_bad"}


def canonical(view_choice: str, swapped: bool) -> str:
    """What a choice made on screen must be stored as, given the lease's left/right swap."""
    if swapped and view_choice == "left":
        return "second"
    if swapped and view_choice == "right":
        return "first"
    return VIEW_TO_CANONICAL[view_choice]


def wait_until(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

    def on_console(msg) -> None:
        if msg.type == "error":  # CSP violations, failed requests, script errors
            errors.append(f"console: {msg.text}")

    page.on("console", on_console)
    yield page
    context.close()
    assert not errors, errors  # no script errors, no CSP violations, no failed requests


def login(page, live_server, user, next_path: str) -> None:
    """Log in through the real form, with the keyboard."""
    page.goto(f"{live_server.url}/login/?next={next_path}")
    page.focus("input[name=username]")
    page.keyboard.type(user.username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{next_path}")
    page.wait_for_selector("#annotate[data-ready=true]", state="attached")


def visible_assignment(page) -> int:
    return int(page.locator(VISIBLE_PAIR).get_attribute("data-assignment"))


def queued_assignments(page) -> list[int]:
    return [
        int(x) for x in page.eval_on_selector_all("section.pair[hidden]", "els => els.map(e => e.dataset.assignment)")
    ]


def wait_for_judgments(count: int, user) -> list[Judgment]:
    wait_until(lambda: Judgment.objects.filter(annotator=user).count() == count, what=f"{count} judgment(s)")
    return list(Judgment.objects.filter(annotator=user).order_by("created_at"))


def member(campaign: Campaign):
    user = UserFactory()
    add_member(campaign, user)
    return user


def ffmpeg_video(path: Path, source: str) -> None:
    subprocess.run(
        [
            shutil.which("ffmpeg") or "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"{source}=size=64x64:rate={FPS}",
            "-t",
            "4",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
        timeout=60,
    )


def write_manifest(folder: Path, lines: list[dict]) -> Path:
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


# ------------------------------------------------------------------ image pair with criteria


def test_image_pair_judged_per_criterion_with_keys_only(page, live_server):
    campaign = CampaignFactory(modality="image", criteria=["prompt_alignment", "visual_quality"])
    round_ = make_round(campaign=campaign, prompts=1, samples_per_prompt=3, overlap=1)
    user = member(campaign)
    login(page, live_server, user, f"/rounds/{round_.id}/annotate/")

    first = visible_assignment(page)
    left_on_screen = int(page.locator(f"{VISIBLE_PAIR} [data-side=left]").get_attribute("data-sample"))
    # The next pair is already in the page, hidden, with its images loaded.
    upcoming = queued_assignments(page)
    assert len(upcoming) == 1 and upcoming[0] != first
    page.wait_for_function(
        "() => [...document.querySelectorAll('section.pair[hidden] img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    rows = page.locator(f"{VISIBLE_PAIR} .criterion-row")
    assert rows.count() == 3
    assert "is-active" in rows.nth(0).get_attribute("class")

    page.wait_for_timeout(50)  # some time on task
    page.keyboard.press("2")  # prompt alignment: right; moves to the next row
    assert "is-active" in rows.nth(1).get_attribute("class")
    page.keyboard.press("3")  # visual quality: tie; moves to overall
    assert "is-active" in rows.nth(2).get_attribute("class")
    page.keyboard.press("ArrowUp")  # back to visual quality, change it
    assert "is-active" in rows.nth(1).get_attribute("class")
    page.keyboard.press("1")  # visual quality: left
    assert page.locator(f'{VISIBLE_PAIR} input[name="criteria.visual_quality"][value=left]').is_checked()
    assert page.locator(f'{VISIBLE_PAIR} input[name="criteria.prompt_alignment"][value=right]').is_checked()
    page.keyboard.press("1")  # overall: left better, submits

    (judgment,) = wait_for_judgments(1, user)
    swapped = Assignment.objects.get(id=first).swapped
    assert judgment.assignment_id == first
    assert judgment.choice == canonical("left", swapped)
    assert judgment.criteria == {
        "prompt_alignment": canonical("right", swapped),
        "visual_quality": canonical("left", swapped),
    }
    assert judgment.time_on_task_ms is not None and judgment.time_on_task_ms > 0
    # Independently of the swap flag: "left" names the sample the page showed on the left.
    assert judgment.left_sample_id == left_on_screen
    comparison = judgment.comparison
    assert judgment.choice == ("first" if left_on_screen == comparison.sample_first_id else "second")

    # The prefetched pair is on screen at once, and one more is being fetched behind it.
    page.wait_for_function(f"() => document.querySelector('{VISIBLE_PAIR}')?.dataset.assignment === '{upcoming[0]}'")
    assert page.locator(f'section.pair[data-assignment="{first}"]').count() == 0
    page.wait_for_function("() => document.querySelectorAll('section.pair[hidden]').length === 1")
    assert queued_assignments(page)[0] not in (first, upcoming[0])
    page.wait_for_function(  # the fetched fragment's media load while it waits, hidden
        "() => [...document.querySelectorAll('section.pair[hidden] img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.wait_for_function("() => document.querySelector('#progress [data-role=done]').textContent === '1'")
    page.wait_for_function("() => document.querySelector('#progress [data-role=remaining]').textContent === '2'")

    # The second pair: the first row is active again; skip the criteria and answer overall only.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("4")
    judgments = wait_for_judgments(2, user)
    assert judgments[1].assignment_id == upcoming[0]
    assert judgments[1].choice == "both_bad" and judgments[1].criteria == {}
    page.wait_for_function("() => document.querySelector('#progress [data-role=done]').textContent === '2'")


# ------------------------------------------------------------------ help overlay and undo


def test_help_overlay_and_undo(page, live_server):
    campaign = CampaignFactory(modality="image", criteria=[])
    round_ = make_round(campaign=campaign, prompts=1, samples_per_prompt=3, overlap=1)
    user = member(campaign)
    login(page, live_server, user, f"/rounds/{round_.id}/annotate/")

    help_box = page.locator("#help")
    assert help_box.is_hidden()
    page.keyboard.press("?")
    assert help_box.is_visible()
    page.keyboard.press("1")  # the overlay is modal: no judgment under it
    page.keyboard.press("Escape")
    assert help_box.is_hidden()
    assert Judgment.objects.filter(annotator=user).count() == 0

    first = visible_assignment(page)
    page.keyboard.press("1")
    (judgment,) = wait_for_judgments(1, user)
    assert judgment.assignment_id == first
    page.wait_for_function(f"() => document.querySelector('{VISIBLE_PAIR}').dataset.assignment !== '{first}'")
    key_before = judgment.idempotency_key

    page.keyboard.press("u")
    wait_for_judgments(0, user)
    page.wait_for_function(f"() => document.querySelector('{VISIBLE_PAIR}').dataset.assignment === '{first}'")
    assert Assignment.objects.get(id=first).status == Assignment.Status.LIVE
    page.wait_for_function("() => document.querySelector('#progress [data-role=done]').textContent === '0'")

    page.keyboard.press("2")  # judge it again, the other way
    (again,) = wait_for_judgments(1, user)
    assert again.assignment_id == first
    assert again.choice == canonical("right", Assignment.objects.get(id=first).swapped)
    assert again.idempotency_key != key_before  # a fresh key for the pair brought back


# ------------------------------------------------------------------ video pair


def test_video_pair_plays_in_sync_and_is_judged_with_keys(page, live_server, tmp_path):
    ffmpeg_video(tmp_path / "a.mp4", "testsrc")
    ffmpeg_video(tmp_path / "b.mp4", "testsrc2")
    manifest = write_manifest(
        tmp_path,
        [
            {
                "prompt": "a spinning clock",
                "samples": [{"model": "m-a", "video": "a.mp4"}, {"model": "m-b", "video": "b.mp4"}],
            }
        ],
    )
    campaign = CampaignFactory(modality="video", criteria=["motion"], overlap=1)
    round_ = round_import(campaign=campaign, source=manifest)
    user = member(campaign)
    login(page, live_server, user, f"/rounds/{round_.id}/annotate/")

    assert page.locator(f"{VISIBLE_PAIR} video").count() == 2
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{VISIBLE_PAIR} video')].every(v => v.readyState >= 3)", timeout=15_000
    )
    sample_js = f"""() => {{
        const [a, b] = document.querySelectorAll('{VISIBLE_PAIR} video');
        return {{a: a.currentTime, b: b.currentTime, duration: a.duration, paused: [a.paused, b.paused],
                 muted: [a.muted, b.muted], loop: [a.loop, b.loop], ready: [a.readyState, b.readyState]}};
    }}"""

    def drift(s):
        d = abs(s["a"] - s["b"])
        return min(d, s["duration"] - d)  # both loop: 3.99 s vs 0.01 s is 0.02 s apart

    start = page.evaluate(sample_js)
    assert start["muted"] == [True, True] and start["loop"] == [True, True]
    assert start["paused"] == [False, False]  # shown pairs play at once, both of them
    page.wait_for_timeout(1000)
    later = page.evaluate(sample_js)
    assert later["ready"][0] >= 3 and later["ready"][1] >= 3
    advanced = (later["a"] - start["a"]) % later["duration"]
    assert advanced > 0.5, (start, later)
    for _ in range(8):
        s = page.evaluate(sample_js)
        assert s["paused"] == [False, False]
        assert drift(s) <= 1 / FPS, s
        page.wait_for_timeout(150)

    # Knock the follower half a second off: the sync loop must pull it back within a moment.
    page.evaluate(
        f"""() => {{ const [a, b] = document.querySelectorAll('{VISIBLE_PAIR} video');
                    b.currentTime = (a.currentTime + 0.5) % a.duration; }}"""
    )
    page.wait_for_timeout(600)
    for _ in range(4):
        s = page.evaluate(sample_js)
        assert drift(s) <= 1 / FPS, s
        page.wait_for_timeout(100)

    # Space pauses both; "." steps both one frame; Space plays both again.
    page.keyboard.press(" ")
    paused = page.evaluate(sample_js)
    assert paused["paused"] == [True, True]
    page.keyboard.press(".")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{VISIBLE_PAIR} video')].every(v => !v.seeking && v.readyState >= 2)"
    )
    stepped = page.evaluate(sample_js)
    assert stepped["paused"] == [True, True]
    assert abs(stepped["a"] - stepped["b"]) < 1e-3
    assert 0 < (stepped["a"] - paused["a"]) % stepped["duration"] <= 1.5 / FPS + 1e-3, (paused, stepped)
    page.keyboard.press("]")
    assert page.evaluate(f"() => [...document.querySelectorAll('{VISIBLE_PAIR} video')].map(v => v.playbackRate)") == [
        1.5,
        1.5,
    ]
    page.keyboard.press("[")
    page.keyboard.press(" ")
    page.wait_for_timeout(400)
    replay = page.evaluate(sample_js)
    assert replay["paused"] == [False, False] and drift(replay) <= 1 / FPS, replay

    assignment = visible_assignment(page)
    page.keyboard.press("4")  # motion: both bad
    page.keyboard.press("2")  # overall: right better
    (judgment,) = wait_for_judgments(1, user)
    swapped = Assignment.objects.get(id=assignment).swapped
    assert judgment.assignment_id == assignment
    assert judgment.choice == canonical("right", swapped)
    assert judgment.criteria == {"motion": "both_bad"}
    assert judgment.time_on_task_ms > 1000
    page.wait_for_selector("#empty", state="visible")  # the only pair: nothing left


# ------------------------------------------------------------------ multi-view pair


def test_multiview_turntables_rotate_together(page, live_server, tmp_path):
    colours = ["#c0392b", "#27ae60", "#2980b9", "#8e44ad"]
    samples = []
    for model in ("m-a", "m-b"):
        views = []
        for i, colour in enumerate(colours):
            name = f"{model}_view_{i}.png"
            Image.new("RGB", (48, 48), colour).save(tmp_path / name)
            views.append(name)
        samples.append({"model": model, "views": views})
    manifest = write_manifest(tmp_path, [{"prompt": "a red cube", "samples": samples}])
    campaign = CampaignFactory(modality="multiview", criteria=["view_consistency"], overlap=1)
    round_ = round_import(campaign=campaign, source=manifest)
    user = member(campaign)
    login(page, live_server, user, f"/rounds/{round_.id}/annotate/")

    views_js = f"""() => [...document.querySelectorAll('{VISIBLE_PAIR} [data-role=turntable]')].map(t => ({{
        index: t.dataset.index,
        shown: [...t.querySelectorAll('img')]
            .filter(i => !i.hidden && i.offsetParent !== null).map(i => i.dataset.view),
    }}))"""
    assert page.evaluate(views_js) == [{"index": "0", "shown": ["0"]}] * 2
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(views_js) == [{"index": "2", "shown": ["2"]}] * 2
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(views_js) == [{"index": "1", "shown": ["1"]}] * 2
    for _ in range(4):  # wraps around
        page.keyboard.press("ArrowRight")
    assert page.evaluate(views_js) == [{"index": "1", "shown": ["1"]}] * 2

    # G: the grid of all views instead of the turntable, and back.
    page.keyboard.press("g")
    assert page.locator(f"{VISIBLE_PAIR} [data-role=turntable]").first.is_hidden()
    assert page.locator(f"{VISIBLE_PAIR} .view-thumb").nth(3).is_visible()
    page.keyboard.press("g")
    assert page.locator(f"{VISIBLE_PAIR} [data-role=turntable]").first.is_visible()

    # E: both sides' current view enlarged side by side; arrows rotate in there too; Esc closes.
    page.keyboard.press("e")
    lightbox = page.locator("#lightbox")
    assert lightbox.is_visible()
    assert lightbox.locator("img").count() == 2
    page.keyboard.press("ArrowRight")
    assert page.evaluate(views_js) == [{"index": "2", "shown": ["2"]}] * 2
    assert "view 3" in lightbox.locator("figcaption").first.inner_text()
    page.keyboard.press("Escape")
    assert page.locator("#lightbox").count() == 0

    assignment = visible_assignment(page)
    page.keyboard.press("1")  # view consistency: left
    page.keyboard.press("3")  # overall: tie
    (judgment,) = wait_for_judgments(1, user)
    swapped = Assignment.objects.get(id=assignment).swapped
    assert judgment.choice == "tie"
    assert judgment.criteria == {"view_consistency": canonical("left", swapped)}
    assert judgment.time_on_task_ms > 0
