"""From the API's fields to a job: the mapping onto validate_request, the one check the CLI makes too.

OpenAI's fields: prompt, model, seconds, size, input_reference. Ours, as extra fields: mode, fps, frames,
aspect, resolution, seed, steps, cfg, cfg_interval, sampler, preset, negative_prompt, strength, direction,
end_reference, source_video_id, expand_prompt. Every field arrives as text from a form or typed from JSON; numbers are
checked by validate_request, which takes numeric strings.

A job stores the keyword arguments of validate_request (with the seed drawn, so the worker makes exactly
what was validated) and its inputs as blobs; the worker calls validate_request again with the same
arguments and the model's info, which gives the same Request.
"""

import json
import secrets
from dataclasses import dataclass

from ..errors import InvalidRequest, MediaError
from ..pipeline import MAX_SEED, Request, batch_key, describe, validate_request

MODES = ("generate", "image", "extend", "connect", "loop", "edit")
# where input_reference / end_reference go, by mode
INPUT_FIELD = {"generate": "image", "image": "image", "extend": "video", "connect": "video", "loop": "image",
               "edit": "video"}
END_FIELD = {"generate": "end_image", "connect": "end_video"}
# validate_request's names -> the API's, for error params
API_NAME = {"negative": "negative_prompt", "image": "input_reference", "video": "input_reference",
            "end_image": "end_reference", "end_video": "end_reference"}
PASSED = ("seconds", "size", "fps", "frames", "aspect", "resolution", "steps", "cfg", "cfg_interval", "sampler",
          "preset", "strength", "direction")
TEXT_FIELDS = ("prompt", "model", "mode", "negative_prompt", "source_video_id", "size", "aspect", "sampler",
               "preset", "direction")
CREATE_FIELDS = ("prompt", "model", "seconds", "size", "input_reference", "mode", "fps", "frames", "aspect",
                 "resolution", "seed", "steps", "cfg", "cfg_interval", "sampler", "preset", "negative_prompt",
                 "strength", "direction", "end_reference", "source_video_id", "expand_prompt")
FILE_FIELDS = ("input_reference", "end_reference")


class APIError(Exception):
    """An error the client caused (or a server error), as OpenAI writes them."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(err: Exception) -> APIError:
    """validate_request's errors (the CLI prints the same message) -> 400 naming the API's field."""
    if isinstance(err, InvalidRequest):
        name = err.field
        code = "invalid_value"
    else:
        name = getattr(err, "field", "input_reference")
        code = "invalid_media"
    return APIError(400, str(err), API_NAME.get(name, name), code)


@dataclass
class Spec:
    """A validated create request, ready to store."""
    fields: dict               # validate_request's keyword arguments; inputs name their blobs
    request: Request
    summary: dict              # what will be made, shown before it is
    shape: str                 # requests of one shape batch together


def boolean(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off", ""):
        return value.strip().lower() in ("true", "1", "yes", "on")
    raise APIError(400, f"{name}={value!r} is not allowed: true or false", name, "invalid_value")


def check_types(body: dict) -> None:
    """Unknown fields and wrong JSON types -> 400 naming the field (a typo must not be silently ignored)."""
    for name, value in body.items():
        if name not in CREATE_FIELDS:
            raise APIError(400, f"Unknown parameter: '{name}'. Known: {', '.join(CREATE_FIELDS)}", name,
                           "unknown_parameter")
        if name in TEXT_FIELDS and value is not None and not isinstance(value, str):
            raise APIError(400, f"{name}={value!r} is not allowed: a string", name, "invalid_type")
        if name in ("seconds", "fps", "frames", "resolution", "seed", "steps", "cfg", "strength") and \
                value is not None and (isinstance(value, (bool, dict, list))):
            raise APIError(400, f"{name}={value!r} is not allowed: a number (or a numeric string)", name,
                           "invalid_type")


def validate(body: dict, inputs: dict[str, object], info) -> Spec:
    """body: the create request's fields (model and files removed); inputs: validate_request field name ->
    a path, bytes or frames. -> Spec; raises APIError."""
    mode = body.get("mode") or "generate"
    if mode not in MODES:
        raise APIError(400, f"mode={mode!r} is not allowed: {' | '.join(MODES)}", "mode", "invalid_value")
    fields = {k: body[k] for k in PASSED if body.get(k) not in (None, "")}
    if mode == "image":
        if "seconds" in fields or "frames" in fields:
            raise APIError(400, "mode='image' makes one frame: leave out seconds and frames", "seconds",
                           "invalid_value")
        fields["seconds"] = 0
    fields["mode"] = "generate" if mode == "image" else mode
    fields["prompt"] = body.get("prompt")
    fields["negative"] = body.get("negative_prompt") or ""
    seed = body.get("seed")
    fields["seed"] = secrets.randbelow(MAX_SEED + 1) if seed in (None, "") else seed
    try:
        request = validate_request(info=info, **fields, **inputs)
    except (InvalidRequest, MediaError) as err:
        raise invalid(err) from None
    fields["seed"] = request.seed        # as a number, so a retried job is exactly this one
    return Spec(fields, request, summarize(request), shape_of(request))


def summarize(r: Request) -> dict:
    return {"width": r.width, "height": r.height, "frames": r.frames, "requested_frames": r.requested_frames,
            "fps": r.fps, "seconds": round((r.frames - 1) / r.fps, 3), "steps": r.steps, "cfg": r.cfg,
            "cfg_interval": list(r.cfg_interval), "seed": r.seed, "sampler": r.sampler, "mode": r.mode,
            "negative_prompt": r.negative, "note": describe(r)}


def shape_of(r: Request) -> str:
    """The key Pipeline.generate groups a batch by (pipeline.batch_key): one key, one batch."""
    return json.dumps(batch_key(r))


def to_api(fields: dict) -> tuple[dict, dict]:
    """validate_request's keyword arguments (an app's rendered request, a feed's order) -> the create request's
    fields and files (input_reference / end_reference), as a client would send them."""
    media = ("image", "video", "end_image", "end_video")
    files = {API_NAME[k]: fields[k] for k in media if fields.get(k) is not None}
    body = {API_NAME.get(k, k): v for k, v in fields.items() if k not in media and v is not None}
    return body, files


def rebuild(fields: dict, inputs: dict[str, bytes], info) -> Request:
    """The worker's side: the stored fields and input bytes -> the same Request the API validated."""
    return validate_request(info=info, **fields, **inputs)


def expand(body: dict, info) -> tuple[dict, str]:
    """The request as the model understands it (intent.expand), as `straightline generate` does it: a caption in
    the style the model was trained on, and the parameters the words asked for ("vertical", "10秒"); fields the
    client set win over the words. The seed is drawn first when not given: it draws both what the words leave
    open and the noise. -> (the body to validate, the expanded prompt)."""
    from ..intent import expand as expand_intent
    body = dict(body)
    if body.get("seed") in (None, ""):
        body["seed"] = secrets.randbelow(MAX_SEED + 1)
    given = {"negative" if k == "negative_prompt" else k: v for k, v in body.items() if k != "prompt"}
    if body.get("mode") == "image":
        given["seconds"] = 0             # no duration from the words; the scene is timed as without one
    try:
        seed = int(float(body["seed"]))
        intent = expand_intent(body.get("prompt"), seed=seed, default_negative="",
                               default_aspect=info.default("aspect"), default_seconds=info.default("seconds"),
                               default_fps=info.default("fps"), given=given)
    except InvalidRequest as err:
        raise invalid(err) from None
    except (TypeError, ValueError):      # a seed that is not a number: validate_request names it
        return body, None
    words = intent.request_fields()
    if "negative" in words:
        words["negative_prompt"] = words.pop("negative")
    merged = {**body, **words}
    return merged, intent.prompt
