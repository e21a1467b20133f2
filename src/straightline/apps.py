"""Low-code apps: one small TOML file is a video app (a form page and a JSON API, mounted by the service).

    title = "Physics playground"
    description = "Pick a shape and how it moves."
    daily_budget_s = 300            # device-seconds per user and day (optional; none: unlimited)
    access = "public"               # "public", "signed-in", or a list of user names
    feed = false                    # whether the app also has a personalised feed of its videos
    prompt = "a {color} {shape} {motion} on a wooden floor"

    [inputs.color]
    type = "choice"
    choices = ["red", "blue", "green"]
    default = "red"

    [generation]                    # fixed fields of every request (pipeline.validate_request's names)
    aspect = "16:9"
    seconds = 2

Input types: "text" (max_length, min_length), "choice" (choices, optional labels), "number" (min, max, integer,
step), "image" (an uploaded picture, given to the request as `image` or `end_image`). Every input may have a
label, help, default and required; `to = "seconds"` (or any numeric/choice generation field) sends an input to
a generation field instead of, or as well as, the prompt. `style` in [generation] is added to every prompt
(the shipped ToyWorld model has no styles, so it is best left out for it).

    app = load_app("apps/physics-playground.toml")   # AppError naming the file, field and reason
    fields = app.render({"color": "blue"})           # validate_request's keyword arguments
    request = app.request({"color": "blue"})         # ... validated: a pipeline.Request
    html = form_html(app, api_url="/apps/physics-playground/api")
    schema = json_schema(app)                        # the JSON API's request body
    registry = AppRegistry("apps")                   # reloads files whose mtime changed; keeps errors aside
"""

import html
import json
import math
import re
import string
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidRequest, MediaError, StraightlineError

INPUT_TYPES = ("text", "choice", "number", "image")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# the generation fields an app may fix (validate_request's keyword arguments, less the media) and their kinds
GENERATION_FIELDS = {"mode": str, "negative": str, "seconds": float, "frames": int, "fps": float, "aspect": str,
                     "resolution": int, "size": str, "steps": int, "cfg": float, "seed": int, "sampler": str,
                     "strength": float, "direction": str, "style": str}
IMAGE_TARGETS = ("image", "end_image")
TOP_LEVEL = ("title", "description", "inputs", "prompt", "generation", "daily_budget_s", "daily_videos", "access",
             "feed")
INPUT_KEYS = {"common": ("type", "label", "help", "default", "required", "to"),
              "text": ("max_length", "min_length", "multiline"), "choice": ("choices", "labels"),
              "number": ("min", "max", "integer", "step"), "image": ()}
MAX_TEXT = 2000


class AppError(StraightlineError):
    """An app file is wrong: names the file, the field (dotted, as in the file) and the reason."""

    def __init__(self, path, field: str, reason: str):
        self.path, self.field, self.reason = str(path), field, reason
        super().__init__(f"{path}: {field}: {reason}" if field else f"{path}: {reason}")


@dataclass(frozen=True)
class Input:
    name: str
    type: str
    label: str
    help: str = ""
    default: object = None
    required: bool = True
    to: str | None = None              # a generation field this input sets (image inputs: image / end_image)
    max_length: int = 200
    min_length: int = 0
    multiline: bool = False
    choices: tuple = ()
    labels: tuple = ()
    min: float | None = None
    max: float | None = None
    integer: bool = False
    step: float | None = None


@dataclass(frozen=True)
class App:
    name: str
    path: str
    title: str
    description: str
    inputs: tuple[Input, ...]
    prompt: str
    generation: dict
    daily_budget_s: float | None = None
    daily_videos: int | None = None
    access: object = "public"          # "public" | "signed-in" | tuple of user names
    feed: bool = False
    mtime: float = field(default=0.0, compare=False)

    def input(self, name: str) -> Input:
        for i in self.inputs:
            if i.name == name:
                return i
        raise InvalidRequest(name, name, "one of this app's inputs: " + ", ".join(i.name for i in self.inputs))

    def allows(self, user: str | None) -> bool:
        """Whether `user` (None: anonymous) may use the app."""
        if self.access == "public":
            return True
        if self.access == "signed-in":
            return bool(user)
        return user in self.access

    def render(self, values: dict | None = None, files: dict | None = None) -> dict:
        """Inputs -> validate_request's keyword arguments (prompt, the fixed generation fields, the inputs sent
        to fields, images). Form values may be strings (as HTML forms send them).

        Args:
            values: input name -> value; missing ones take their default.
            files: image input name -> bytes, a path or uint8 (H, W, 3) frames.
        Raises:
            InvalidRequest naming the input, the value and what is allowed.
        """
        values, files = dict(values or {}), dict(files or {})
        for name in list(values) + list(files):
            if not any(i.name == name for i in self.inputs):
                raise InvalidRequest(name, values.get(name, "(a file)"),
                                     "one of this app's inputs: " + ", ".join(i.name for i in self.inputs))
        words, out = {}, self.fixed_fields()
        for spec in self.inputs:
            if spec.type == "image":
                value = files.get(spec.name, values.get(spec.name))
                if value is None or (isinstance(value, (str, bytes)) and not value):
                    if spec.required:
                        raise InvalidRequest(spec.name, None, "an image (PNG, JPEG or any picture file)")
                    continue
                out[spec.to or "image"] = value
                continue
            value = _coerce(spec, values.get(spec.name))
            words[spec.name] = "" if value is None else str(value)
            if spec.to and value is not None:
                out[spec.to] = value
        prompt = _fill(self.prompt, words)
        if self.generation.get("style"):
            prompt = f"{prompt}, {self.generation['style']}" if prompt else self.generation["style"]
        out["prompt"] = prompt
        return out

    def request(self, values: dict | None = None, files: dict | None = None, info=None):
        """render() then pipeline.validate_request: a validated Request (InvalidRequest / MediaError if not)."""
        from .pipeline import validate_request
        fields_ = self.render(values, files)
        try:
            return validate_request(fields_.pop("prompt"), info=info, **fields_)
        except (InvalidRequest, MediaError) as err:     # a field an input set is named by that input
            name = next((i.name for i in self.inputs if getattr(err, "field", None) == (i.to or (
                "image" if i.type == "image" else None))), None)
            if name is None:
                raise
            if isinstance(err, InvalidRequest):
                raise InvalidRequest(name, err.value, err.allowed) from None
            err.field = name
            raise

    def fixed_fields(self) -> dict:
        """The fixed generation fields as validate_request takes them (style is a prompt suffix, not a field): what
        the app's feed generates with (FeedConfig.request)."""
        return {k: v for k, v in self.generation.items() if k != "style"}

    def defaults(self) -> dict:
        return {i.name: i.default for i in self.inputs if i.type != "image" and i.default is not None}


def _fill(template: str, words: dict) -> str:
    """The template with {name} filled; runs of spaces left by empty optional inputs collapse to one."""
    text = string.Formatter().vformat(template, (), words)
    return re.sub(r"\s+([,.;])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()


def _coerce(spec: Input, value):
    """One input's value, checked against its spec (missing: its default); None for an optional empty input."""
    if value is None or (isinstance(value, str) and not value.strip() and spec.type != "text"):
        value = spec.default
    if spec.type == "text":
        value = "" if value is None else value
        if not isinstance(value, str):
            raise InvalidRequest(spec.name, value, "text")
        value = " ".join(value.split())      # newlines and runs of spaces mean nothing in a prompt
        if not value and spec.required:
            raise InvalidRequest(spec.name, value, "some text (this input is required)")
        if not spec.min_length <= len(value) <= spec.max_length:
            raise InvalidRequest(spec.name, value, f"{spec.min_length} to {spec.max_length} characters")
        return value or None
    if value is None:
        if spec.required:
            raise InvalidRequest(spec.name, None, _allowed(spec) + " (this input is required)")
        return None
    if spec.type == "choice":
        if str(value) not in spec.choices:
            raise InvalidRequest(spec.name, value, _allowed(spec))
        return str(value)
    try:                                  # number: an int, a float or a numeric string
        number = float("nan") if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or (spec.integer and number != int(number)) or \
            (spec.min is not None and number < spec.min) or (spec.max is not None and number > spec.max):
        raise InvalidRequest(spec.name, value, _allowed(spec))
    return int(number) if spec.integer else number


def _allowed(spec: Input) -> str:
    if spec.type == "choice":
        return "one of " + ", ".join(spec.choices)
    kind = "a whole number" if spec.integer else "a number"
    return f"{kind} from {spec.min:g} to {spec.max:g}"


# --- reading and checking a file ---------------------------------------------------------------------------

_KIND_WORDS = {str: "text", bool: "true or false", int: "a whole number", float: "a number", list: "a list",
               dict: "a table"}


def load_app(path, info=None) -> App:
    """Read and check one app file. Raises AppError (file, field, reason) and nothing else."""
    path = Path(path)
    name = path.stem
    if not NAME.fullmatch(name):
        raise AppError(path, "", f"the file name '{name}' is the app's URL name: lower-case letters, digits, "
                       "'-' and '_', starting with a letter or digit")
    try:
        mtime = path.stat().st_mtime
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AppError(path, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise AppError(path, "", f"cannot be read ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise AppError(path, "", f"not valid TOML: {err}") from None
    return parse_app(data, name, path, mtime, info)


def parse_app(data: dict, name: str, path="<app>", mtime: float = 0.0, info=None) -> App:
    """Check an app's parsed TOML (see load_app)."""
    def need(obj, key, kind, where, default=None, required=False):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = " or ".join(_KIND_WORDS[k] for k in kinds)
        if key not in obj:
            if required:
                raise AppError(path, where, f"missing ({names})")
            return default
        value = obj[key]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise AppError(path, where, f"{value!r} should be {names}")
        return value

    for key in data:
        if key not in TOP_LEVEL:
            raise AppError(path, key, "unknown field; an app has " + ", ".join(TOP_LEVEL))
    title = need(data, "title", str, "title", required=True).strip()
    if not title or len(title) > 100:
        raise AppError(path, "title", "1 to 100 characters")
    description = need(data, "description", str, "description", "")
    feed = need(data, "feed", bool, "feed", False)
    budget = need(data, "daily_budget_s", (int, float), "daily_budget_s")
    if budget is not None and budget < 0:
        raise AppError(path, "daily_budget_s", f"{budget} should be 0 or more device-seconds per user and day")
    videos = need(data, "daily_videos", int, "daily_videos")
    if videos is not None and videos < 0:
        raise AppError(path, "daily_videos", f"{videos} should be 0 or more videos per user and day")
    access = need(data, "access", (str, list), "access", "public")
    if isinstance(access, list):
        if not all(isinstance(u, str) and u for u in access):
            raise AppError(path, "access", "a list of user names (text)")
        access = tuple(access)
    elif access not in ("public", "signed-in"):
        raise AppError(path, "access", f"'{access}' should be \"public\", \"signed-in\" or a list of user names")

    inputs = []
    for iname, spec in need(data, "inputs", dict, "inputs", {}).items():
        where = f"inputs.{iname}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", iname):
            raise AppError(path, where, "an input name is a letter or '_' then letters, digits or '_'")
        if not isinstance(spec, dict):
            raise AppError(path, where, "should be a table ([inputs." + iname + "] with a type)")
        inputs.append(_parse_input(iname, spec, path, need))

    generation = dict(need(data, "generation", dict, "generation", {}))
    for key in generation:
        if key not in GENERATION_FIELDS:
            raise AppError(path, f"generation.{key}", "unknown field; generation has " + ", ".join(GENERATION_FIELDS))
        need(generation, key, (int, float) if GENERATION_FIELDS[key] in (int, float) else str, f"generation.{key}")
    names = {i.name for i in inputs}
    for i in inputs:
        if i.to and i.to in generation:
            raise AppError(path, f"inputs.{i.name}.to", f"generation.{i.to} is fixed; an input cannot also set it")
    if len([i for i in inputs if i.type == "image" and (i.to or "image") == "image"]) > 1:
        raise AppError(path, "inputs", "at most one image input goes to 'image' (set to = \"end_image\" on another)")

    template = need(data, "prompt", str, "prompt", "")
    try:
        used = {f for _, f, spec, conv in string.Formatter().parse(template) if f is not None}
        bad = [f for _, f, spec, conv in string.Formatter().parse(template) if f is not None and (spec or conv)]
    except ValueError as err:
        raise AppError(path, "prompt", f"a template with {{input}} placeholders: {err}") from None
    for f in sorted(used):
        if f not in names:
            raise AppError(path, "prompt", f"{{{f}}} is not an input (inputs: {', '.join(sorted(names)) or 'none'})")
        if next(i for i in inputs if i.name == f).type == "image":
            raise AppError(path, "prompt", f"{{{f}}} is an image input; images go to the request, not the prompt")
    if bad:
        raise AppError(path, "prompt", f"{{{bad[0]}}}: placeholders are plain input names, no formats or conversions")
    if len(template) > MAX_TEXT:
        raise AppError(path, "prompt", f"at most {MAX_TEXT} characters")

    app = App(name, str(path), title, description, tuple(inputs), template, generation,
              float(budget) if budget is not None else None, videos, access, feed, mtime)
    _check_request(app, path, info)
    return app


def _parse_input(name: str, spec: dict, path, need) -> Input:
    where = f"inputs.{name}"
    kind = need(spec, "type", str, f"{where}.type", required=True)
    if kind not in INPUT_TYPES:
        raise AppError(path, f"{where}.type", f"'{kind}' should be one of " + ", ".join(INPUT_TYPES))
    for key in spec:
        if key not in INPUT_KEYS["common"] + INPUT_KEYS[kind]:
            raise AppError(path, f"{where}.{key}", f"unknown for a {kind} input; it has "
                           + ", ".join(INPUT_KEYS["common"] + INPUT_KEYS[kind]))
    label = need(spec, "label", str, f"{where}.label", name.replace("_", " ").capitalize())
    help_ = need(spec, "help", str, f"{where}.help", "")
    to = need(spec, "to", str, f"{where}.to")
    kw = {}
    if kind == "image":
        if to is not None and to not in IMAGE_TARGETS:
            raise AppError(path, f"{where}.to", f"'{to}' should be one of " + ", ".join(IMAGE_TARGETS))
        if "default" in spec:
            raise AppError(path, f"{where}.default", "an image input has no default")
    elif to is not None and (to not in GENERATION_FIELDS or to in ("style", "mode")):
        raise AppError(path, f"{where}.to", f"'{to}' should be a generation field: "
                       + ", ".join(k for k in GENERATION_FIELDS if k not in ("style", "mode")))
    if kind == "text":
        kw["max_length"] = need(spec, "max_length", int, f"{where}.max_length", 200)
        kw["min_length"] = need(spec, "min_length", int, f"{where}.min_length", 0)
        kw["multiline"] = need(spec, "multiline", bool, f"{where}.multiline", False)
        if not 0 <= kw["min_length"] <= kw["max_length"] <= MAX_TEXT:
            raise AppError(path, f"{where}.max_length", f"0 <= min_length <= max_length <= {MAX_TEXT}")
    if kind == "choice":
        choices = need(spec, "choices", list, f"{where}.choices", required=True)
        if not choices or not all(isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in choices):
            raise AppError(path, f"{where}.choices", "a non-empty list of values (text or numbers)")
        kw["choices"] = tuple(str(c) for c in choices)
        if len(set(kw["choices"])) != len(choices):
            raise AppError(path, f"{where}.choices", "each choice once")
        labels = need(spec, "labels", list, f"{where}.labels", list(kw["choices"]))
        if len(labels) != len(choices) or not all(isinstance(x, str) for x in labels):
            raise AppError(path, f"{where}.labels", f"{len(choices)} texts, one per choice")
        kw["labels"] = tuple(labels)
    if kind == "number":
        for key in ("min", "max"):
            kw[key] = float(need(spec, key, (int, float), f"{where}.{key}", required=True))
        if kw["min"] > kw["max"]:
            raise AppError(path, f"{where}.max", f"{kw['max']:g} is less than min ({kw['min']:g})")
        kw["integer"] = need(spec, "integer", bool, f"{where}.integer", False)
        step = need(spec, "step", (int, float), f"{where}.step")
        if step is not None and step <= 0:
            raise AppError(path, f"{where}.step", f"{step} should be more than 0")
        kw["step"] = float(step) if step is not None else None
    default = spec.get("default")
    required = need(spec, "required", bool, f"{where}.required", default is None)
    probe = Input(name, kind, label, help_, None, False, to, **kw)
    if default is not None:
        try:
            default = _coerce(probe, default)
        except InvalidRequest as err:
            raise AppError(path, f"{where}.default", f"{default!r} should be {err.allowed}") from None
    return Input(name, kind, label, help_, default, required, to, **kw)


def _check_request(app: App, path, info) -> None:
    """Render the defaults (a tiny picture for image inputs) and validate the request, so that a wrong fixed
    field (an aspect the model refuses, a duration too long) is found when the file is read, not by a user."""
    import numpy as np
    values = {}
    for i in app.inputs:
        if i.type == "text" and i.default is None and i.required:
            values[i.name] = "x" * max(1, i.min_length)
        elif i.type == "choice" and i.default is None:
            values[i.name] = i.choices[0]
        elif i.type == "number" and i.default is None:
            values[i.name] = i.min
    files = {i.name: np.zeros((16, 16, 3), np.uint8) for i in app.inputs if i.type == "image"}
    if app.generation.get("mode") in ("extend", "connect", "edit"):
        raise AppError(path, "generation.mode", "generate or loop (apps take text and images, not videos)")
    try:
        app.request(values, files, info=info)
    except InvalidRequest as err:
        where = f"inputs.{err.field}" if any(i.name == err.field for i in app.inputs) else f"generation.{err.field}"
        if err.field == "prompt":
            where = "prompt"
        raise AppError(path, where, f"{err.value!r} is not allowed: {err.allowed}") from None
    except MediaError as err:       # unreachable with the tiny picture, but an app error all the same
        raise AppError(path, "inputs", str(err)) from None


# --- what the service shows ---------------------------------------------------------------------------------

def json_schema(app: App) -> dict:
    """JSON Schema of the app's request body: one property per input (images: a file in multipart/form-data,
    or a base64 string in JSON)."""
    props, required = {}, []
    for i in app.inputs:
        p = {"title": i.label, "description": i.help} if i.help else {"title": i.label}
        if i.type == "text":
            p |= {"type": "string", "maxLength": i.max_length, "minLength": i.min_length}
        elif i.type == "choice":
            p |= {"type": "string", "enum": list(i.choices)}
        elif i.type == "number":
            p |= {"type": "integer" if i.integer else "number", "minimum": i.min, "maximum": i.max}
        else:
            p |= {"type": "string", "format": "binary", "contentMediaType": "image/*"}
        if i.default is not None:
            p["default"] = i.default
        props[i.name] = p
        if i.required and i.default is None:
            required.append(i.name)
    return {"title": app.title, "description": app.description, "type": "object", "properties": props,
            "required": required, "additionalProperties": False}


def openapi_operation(app: App) -> dict:
    """An OpenAPI operation for POST /apps/NAME/api (for FastAPI's `openapi_extra`)."""
    form = json_schema(app)
    body = json.loads(json.dumps(form))       # in JSON an image is a base64 string (or a data: URL)
    for i in app.inputs:
        if i.type == "image":
            body["properties"][i.name] = {k: v for k, v in body["properties"][i.name].items() if k != "format"} | \
                {"contentEncoding": "base64"}
    return {"summary": app.title, "description": app.description, "operationId": f"app_{app.name.replace('-', '_')}",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form},
                                                           "application/json": {"schema": body}}}}


_FORM_CSS = """body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}
label{display:block;margin-top:1rem;font-weight:600}small{display:block;color:#666;font-weight:400}
input,select,textarea{width:100%;padding:.4rem;font:inherit;box-sizing:border-box}
button{margin-top:1.2rem;padding:.6rem 1.4rem;font:inherit}#status{margin-top:1rem}
video{width:100%;margin-top:1rem;background:#000}.error{color:#b00}nav a{margin-right:1rem}
.notice{background:#fff3cd;padding:.6rem;border-radius:.3rem}"""

_FORM_JS = """const form=document.getElementById('app'),status=document.getElementById('status'),
video=document.getElementById('video');
const keybox=document.getElementById('keybox'),keyInput=document.getElementById('key');
keyInput.onchange=()=>localStorage.setItem('straightline-key',keyInput.value.trim());
form.addEventListener('submit',async e=>{e.preventDefault();status.className='';video.hidden=true;
 status.textContent='Submitting…';const headers={};const key=localStorage.getItem('straightline-key');
 if(key)headers['Authorization']='Bearer '+key;
 try{let r=await fetch(form.action,{method:'POST',body:new FormData(form),headers});let job=await r.json();
  if(r.status===401)keybox.hidden=false;
  if(!r.ok)throw new Error((job.error&&job.error.message)||r.statusText);
  while(job.status==='queued'||job.status==='in_progress'){
   status.textContent=(job.status==='queued'?'Queued':'Generating… '+(job.progress||0)+'%');
   await new Promise(ok=>setTimeout(ok,1000));
   r=await fetch(VIDEOS+'/'+job.id,{headers});job=await r.json();
   if(!r.ok)throw new Error((job.error&&job.error.message)||r.statusText);}
  if(job.status!=='completed')throw new Error((job.error&&job.error.message)||job.status);
  status.textContent='Done.';const c=await fetch(VIDEOS+'/'+job.id+'/content',{headers});
  video.src=URL.createObjectURL(await c.blob());video.hidden=false;video.play();
 }catch(err){status.className='error';status.textContent=err.message;}});"""


def form_html(app: App, api_url: str | None = None, videos_url: str = "/v1/videos", links: dict | None = None,
              notice: str = "") -> str:
    """A complete HTML page (no build step, no external files): the app's form, which POSTs multipart/form-data
    to `api_url` (default /apps/NAME/api), expects an OpenAI-style video object back ({id, status, progress}),
    polls `videos_url`/ID until it is completed and plays `videos_url`/ID/content. An API key, when the service
    needs one, is read from localStorage['straightline-key'] (a 401 shows a box to enter it). `links` (text ->
    URL) are shown above the title, `notice` (text) under it."""
    e = html.escape
    api_url = api_url or f"/apps/{app.name}/api"
    rows = []
    for i in app.inputs:
        req = " required" if i.required and i.default is None else ""
        value = "" if i.default is None else e(str(i.default))
        if i.type == "text" and i.multiline:
            field_ = (f'<textarea name="{i.name}" id="{i.name}" maxlength="{i.max_length}" rows="3"{req}>'
                      f'{value}</textarea>')
        elif i.type == "text":
            field_ = (f'<input type="text" name="{i.name}" id="{i.name}" maxlength="{i.max_length}" '
                      f'value="{value}"{req}>')
        elif i.type == "choice":
            options = "".join(f'<option value="{e(c)}"{" selected" if str(i.default) == c else ""}>{e(lab)}</option>'
                              for c, lab in zip(i.choices, i.labels))
            field_ = f'<select name="{i.name}" id="{i.name}"{req}>{options}</select>'
        elif i.type == "number":
            step = f"{i.step:g}" if i.step else ("1" if i.integer else "any")
            field_ = (f'<input type="number" name="{i.name}" id="{i.name}" min="{i.min:g}" max="{i.max:g}" '
                      f'step="{step}" value="{value}"{req}>')
        else:
            field_ = f'<input type="file" accept="image/*" name="{i.name}" id="{i.name}"{req}>'
        help_ = f"<small>{e(i.help)}</small>" if i.help else ""
        rows.append(f'<label for="{i.name}">{e(i.label)}{help_}</label>{field_}')
    budget = f"<p><small>Daily budget: {app.daily_budget_s:g} device-seconds per user.</small></p>" \
        if app.daily_budget_s is not None else ""
    nav = "<nav>" + "".join(f'<a href="{e(url)}">{e(text)}</a>' for text, url in links.items()) + "</nav>" \
        if links else ""
    notice = f'<p class="notice">{e(notice)}</p>' if notice else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{e(app.title)}</title><style>{_FORM_CSS}</style></head>
<body>{nav}<h1>{e(app.title)}</h1>{notice}<p>{e(app.description)}</p>{budget}
<p id="keybox" hidden><label for="key">API key<small>This app needs you signed in: paste your key (sk-sl-…), then
Generate again.</small></label><input id="key" autocomplete="off"></p>
<form id="app" action="{e(api_url)}" method="post" enctype="multipart/form-data">
{chr(10).join(rows)}
<button type="submit">Generate</button></form>
<div id="status" role="status"></div><video id="video" controls loop playsinline hidden></video>
<script>const VIDEOS={json.dumps(videos_url)};
{_FORM_JS}</script></body></html>
"""


# --- a folder of apps, reloaded when files change -----------------------------------------------------------

class AppRegistry:
    """The apps in a folder (*.toml), re-read when a file's mtime changes (checked at most every `interval`
    seconds, on use). A file with an error keeps its last good version serving, and the error is listed in
    `errors`; a removed file removes its app. Never raises on a bad file."""

    def __init__(self, folder, interval: float = 1.0, info=None):
        self.folder, self.interval, self.info = Path(folder), interval, info
        self._apps: dict[str, App] = {}
        self.errors: dict[str, AppError] = {}
        self._seen: dict[str, float] = {}
        self._checked = -float("inf")
        self._lock = threading.Lock()
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> list[str]:
        """Re-read changed files; returns the names (re)loaded or removed."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked < self.interval:
                return []
            self._checked = now
            changed = []
            files = {p.stem: p for p in sorted(self.folder.glob("*.toml"))} if self.folder.is_dir() else {}
            for name, p in files.items():
                try:
                    mtime = p.stat().st_mtime
                except OSError:
                    continue
                if self._seen.get(name) == mtime:
                    continue
                self._seen[name] = mtime
                changed.append(name)
                try:
                    self._apps[name] = load_app(p, self.info)
                    self.errors.pop(name, None)
                except AppError as err:
                    self.errors[name] = err
            for name in [n for n in list(self._seen) if n not in files]:
                self._seen.pop(name)
                self._apps.pop(name, None)
                self.errors.pop(name, None)
                changed.append(name)
            return changed

    def get(self, name: str) -> App | None:
        self.refresh()
        return self._apps.get(name)

    def apps(self) -> dict[str, App]:
        self.refresh()
        return dict(self._apps)


# --- scaffolding ----------------------------------------------------------------------------------------------

TEMPLATE = '''# {title}: a straightline app. Edit and save; the service reloads it.
# Serve it with: straightline serve --apps {folder}   (then open /apps/{name})
title = "{title}"
description = "Describe what your app makes, in a sentence."
daily_budget_s = 120        # device-seconds each user may spend per day
access = "public"           # "public", "signed-in", or a list of user names: ["alice", "bob"]
feed = false                # true: the app also offers a feed of its videos

# The prompt: {{name}} is replaced by the input called name.
prompt = "a {{color}} {{shape}} {{motion}} {{place}}"

[inputs.shape]
type = "choice"
choices = ["ball", "square", "triangle", "star", "ring", "cross"]
default = "ball"

[inputs.color]
type = "choice"
label = "Colour"
choices = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "white"]
default = "red"

[inputs.motion]
type = "choice"
choices = ["bouncing", "sliding to the left", "sliding to the right", "falling", "spinning", "growing"]
default = "bouncing"

[inputs.place]
type = "text"
label = "Where"
help = "For example: on a wooden floor, over the ocean, at night"
default = "on a wooden floor"
max_length = 60

# Fixed for every video this app makes.
[generation]
aspect = "16:9"
seconds = 2
steps = 20
'''


def scaffold(name: str, folder="apps", title: str | None = None) -> Path:
    """Write apps/NAME.toml from a template that parses and renders (tested); refuses to overwrite."""
    if not NAME.fullmatch(name):
        raise InvalidRequest("name", name, "lower-case letters, digits, '-' and '_', starting with a letter or "
                             "digit (it is the app's URL: /apps/NAME)")
    path = Path(folder) / f"{name}.toml"
    if path.exists():
        raise InvalidRequest("name", name, f"a new app name ({path} exists)")
    path.parent.mkdir(parents=True, exist_ok=True)
    title = title or name.replace("-", " ").replace("_", " ").capitalize()
    path.write_text(TEMPLATE.format(title=title.replace('"', "'"), name=name, folder=folder), encoding="utf-8")
    return path
