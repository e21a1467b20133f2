"""Low-code apps: the example apps render valid requests, bad files name file/field/reason, scaffolded apps
parse, the registry reloads on change and keeps serving the last good version."""

import os
from pathlib import Path

import numpy as np
import pytest

from straightline.apps import (
    AppError,
    AppRegistry,
    form_html,
    json_schema,
    load_app,
    openapi_operation,
    parse_app,
    scaffold,
)
from straightline.cli import main
from straightline.errors import InvalidRequest
from straightline.pipeline import Request

APPS = Path(__file__).parent.parent / "apps"
PICTURE = np.full((40, 60, 3), 200, np.uint8)

MINIMAL = '''title = "Mini"
prompt = "a {color} ball bouncing"
[inputs.color]
type = "choice"
choices = ["red", "blue"]
default = "red"
[generation]
aspect = "16:9"
seconds = 1
'''


def test_the_example_apps_render_valid_requests():
    names = sorted(p.stem for p in APPS.glob("*.toml"))
    assert names == ["loop-maker", "physics-playground", "vertical-shorts"]
    physics = load_app(APPS / "physics-playground.toml")
    r = physics.request({"shape": "star", "color": "blue", "motion": "sliding to the left", "seconds": "3"})
    assert isinstance(r, Request) and r.prompt == "a medium blue star sliding to the left on a wooden floor"
    assert (r.width, r.height, r.frames) == (224, 128, 37)        # 16:9 at 128, 3 s at 12 fps
    shorts = load_app(APPS / "vertical-shorts.toml")
    r = shorts.request({"idea": "two green squares colliding on sand"})
    assert r.height > r.width and shorts.feed and not shorts.allows(None) and shorts.allows("ann")
    loop = load_app(APPS / "loop-maker.toml")
    r = loop.request({"motion": "the ball bounces"}, {"picture": PICTURE})
    assert r.mode == "loop" and r.width == r.height and r.image is not None and loop.daily_videos == 20
    with pytest.raises(InvalidRequest, match="picture"):
        loop.request({})


def test_inputs_are_checked_by_name():
    app = load_app(APPS / "physics-playground.toml")
    for values, name in (({"color": "teal"}, "color"), ({"seconds": "9"}, "seconds"), ({"seconds": "x"}, "seconds"),
                         ({"colour": "red"}, "colour")):
        with pytest.raises(InvalidRequest) as err:
            app.request(values)
        assert err.value.field == name
    shorts = load_app(APPS / "vertical-shorts.toml")
    with pytest.raises(InvalidRequest, match="idea"):
        shorts.render({"idea": "x" * 161})
    assert shorts.render({"idea": "  a red\nball  "})["prompt"] == "a red ball"


BAD = [
    ("title = 'x'\ntitle = 'y'", "", "not valid TOML"),
    ("prompt = 'a ball'", "title", "missing"),
    (MINIMAL + "colour = 1\n", "generation.colour", "unknown field"),
    (MINIMAL.replace('title = "Mini"', 'title = "Mini"\nbudget = 3'), "budget", "unknown field"),
    (MINIMAL.replace('type = "choice"', 'type = "slider"'), "inputs.color.type", "should be one of"),
    (MINIMAL.replace('default = "red"', 'default = "teal"'), "inputs.color.default", "one of red, blue"),
    (MINIMAL.replace("{color}", "{colour}"), "prompt", "not an input"),
    (MINIMAL.replace("{color}", "{color!r}"), "prompt", "plain input names"),
    (MINIMAL.replace('aspect = "16:9"', 'aspect = "9:1"'), "generation.aspect", "between 1:4 and 4:1"),
    (MINIMAL.replace("seconds = 1", "seconds = 600"), "generation.seconds", "not allowed"),
    (MINIMAL.replace("seconds = 1", 'seconds = "long"'), "generation.seconds", "should be"),
    (MINIMAL + '[inputs.n]\ntype = "number"\nmin = 5\nmax = 1\n', "inputs.n.max", "less than min"),
    (MINIMAL + '[inputs.n]\ntype = "number"\nmax = 1\n', "inputs.n.min", "missing"),
    (MINIMAL.replace('title = "Mini"', 'title = "Mini"\naccess = "friends"'), "access", "signed-in"),
    (MINIMAL.replace('title = "Mini"', 'title = "Mini"\ndaily_budget_s = -1'), "daily_budget_s", "0 or more"),
    (MINIMAL + '[inputs.pic]\ntype = "image"\nto = "video"\n', "inputs.pic.to", "image, end_image"),
    (MINIMAL.replace('aspect = "16:9"', 'mode = "edit"'), "generation.mode", "generate or loop"),
]


@pytest.mark.parametrize("text, field, reason", BAD, ids=[f"{f or 'toml'}-{r}" for _, f, r in BAD])
def test_a_bad_app_file_names_file_field_and_reason(tmp_path, text, field, reason):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(AppError) as err:
        load_app(path)
    assert err.value.path == str(path) and err.value.field == field and reason in err.value.reason
    assert str(err.value).startswith(f"{path}: ")


def test_unreadable_files_and_names_are_app_errors(tmp_path):
    with pytest.raises(AppError, match="no such file"):
        load_app(tmp_path / "missing.toml")
    (tmp_path / "Bad Name.toml").write_text(MINIMAL)
    with pytest.raises(AppError, match="URL name"):
        load_app(tmp_path / "Bad Name.toml")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(AppError, match="cannot be read"):
        load_app(tmp_path / "binary.toml")


def test_a_scaffolded_app_parses_and_renders(tmp_path):
    path = scaffold("my-app", tmp_path)
    app = load_app(path)
    assert app.title == "My app" and app.request().prompt == "a red ball bouncing on a wooden floor"
    with pytest.raises(InvalidRequest, match="exists"):
        scaffold("my-app", tmp_path)
    with pytest.raises(InvalidRequest, match="name"):
        scaffold("My App", tmp_path)


def test_cli_app_new_and_check(tmp_path, capsys):
    assert main(["app", "new", "party-time", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "party-time.toml").is_file()
    assert main(["app", "new", "party-time", "--dir", str(tmp_path)]) == 2
    assert main(["app", "check", str(tmp_path)]) == 0
    (tmp_path / "broken.toml").write_text("title = 3")
    assert main(["app", "check", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert "party-time" in out.out and "broken.toml: title:" in out.err


def test_registry_reloads_changed_files_and_keeps_the_last_good_version(tmp_path):
    path = tmp_path / "mini.toml"
    path.write_text(MINIMAL)
    registry = AppRegistry(tmp_path, interval=0.0)
    assert registry.get("mini").title == "Mini" and not registry.errors

    def rewrite(text, bump):
        path.write_text(text)
        t = path.stat().st_mtime + bump
        os.utime(path, (t, t))          # some file systems keep mtimes in whole seconds

    rewrite(MINIMAL.replace('"Mini"', '"Mini 2"'), 1)
    assert registry.get("mini").title == "Mini 2"
    rewrite("title = ", 2)                                   # a broken save: the app keeps serving
    assert registry.get("mini").title == "Mini 2" and "not valid TOML" in str(registry.errors["mini"])
    rewrite(MINIMAL, 3)
    assert registry.get("mini").title == "Mini" and not registry.errors
    path.unlink()
    assert registry.get("mini") is None and registry.apps() == {}


def test_form_page_and_api_schema():
    app = load_app(APPS / "physics-playground.toml")
    page = form_html(app)
    assert page.startswith("<!doctype html>") and 'action="/apps/physics-playground/api"' in page
    for i in app.inputs:
        assert f'name="{i.name}"' in page
    assert '<option value="star">star</option>' in page and 'min="1" max="4" step="0.5"' in page
    schema = json_schema(app)
    assert schema["properties"]["shape"]["enum"][0] == "ball" and schema["required"] == []
    assert schema["properties"]["seconds"] == {"title": "Length (seconds)", "type": "number", "minimum": 1.0,
                                               "maximum": 4.0, "default": 2.0}
    loop = load_app(APPS / "loop-maker.toml")
    assert json_schema(loop)["required"] == ["picture"] and 'type="file"' in form_html(loop)
    assert "multipart/form-data" in openapi_operation(loop)["requestBody"]["content"]
    escaped = parse_app({"title": "<b>x</b>", "prompt": "a ball"}, "x")
    assert "<b>" not in form_html(escaped)
