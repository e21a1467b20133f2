"""The low-code apps in the service: every app file of Settings.apps_dir (`straightline serve --apps DIR`).

    GET  /apps                               the apps, and the files with errors (a page)
    GET  /v1/apps                            the same as JSON
    GET  /apps/{name}                        the app's form page (apps.form_html)
    POST /apps/{name}/api                    its inputs as JSON or a form -> a video object: a job on the queue
    GET  /apps/{name}/api                    the app, its request schema and your use of its budget today
    GET  /apps/{name}/videos/{id}            a video you made (the form page polls it) ...
    GET  /apps/{name}/videos/{id}/content    ... and its file (?variant=thumbnail|spritesheet)
    /apps/{name}/feed[/next|/events|/me|/videos/{id}/content]   feed = true: the app's feed (feeds.py)

The files are read through apps.AppRegistry: an edited, added or removed file takes effect on the next request
(Settings.apps_reload_s). A file with an error never stops the server: if it had a good version, that version
keeps serving (its form page says so), else its routes answer 503 with the file, field and reason; /apps lists
every error. /openapi.json describes POST /apps/NAME/api for each app as it is now.

Who may use an app is its `access`: "public" (anyone; without a key a visitor is "anon:IP"), "signed-in" (an API
key: 401 without one) or a list of names (of API keys: 403 for others). Local mode has no keys and one user,
"local", who may use every app. The app's daily budget (device-seconds, as quoted before a job runs and as
measured after) and its daily video count are per user and UTC day, and count what the app's feed makes for
the user too; past either the API answers 429 with what was used. A form's jobs are ordinary jobs of the caller
(listed by /v1/videos, counted by /v1/usage, limited by the key's budgets too).
"""

import base64
import binascii
import copy
import datetime
import html
import json
import re
import secrets
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..apps import App, AppError, AppRegistry, form_html, json_schema, openapi_operation
from ..errors import InvalidRequest
from .api import _limited, _save_upload
from .feeds import LazyFeed, QueuedFeed, add_feed_routes, feed_config, make_embedder
from .spec import API_NAME, APIError, to_api


def _midnight() -> datetime.datetime:
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _shown(err: AppError) -> str:
    """An app file's error as users see it: the file named by its folder and name, not the server's path."""
    path = Path(err.path)
    where = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return f"{where}: {err.field}: {err.reason}" if err.field else f"{where}: {err.reason}"


def _access(app: App) -> str:
    return app.access if isinstance(app.access, str) else "listed users"


def admit(app: App, caller) -> None:
    """The app's access rule for this caller: 401 (not signed in) or 403 (not on its list)."""
    if caller.local or app.allows(caller.user):
        return
    if caller.user is None:
        raise APIError(401, f"{app.title} is for signed-in users: send your API key as 'Authorization: Bearer "
                       "sk-sl-…' (the form page asks for it)", None, "missing_api_key", "authentication_error")
    raise APIError(403, f"{app.title} is not open to {caller.user!r}: its file lists the users who may use it",
                   None, "app_access_denied", "permission_error")


def budget_check(store, app: App, user: str):
    """charge(estimated_device_s) for create_job: 429 past the app's daily videos or device-seconds for `user`."""
    def charge(device_s: float) -> None:
        if app.daily_videos is None and app.daily_budget_s is None:
            return
        midnight = _midnight()
        used = store.app_usage(app.name, user, since=midnight.timestamp())
        reset = int((midnight + datetime.timedelta(days=1) - datetime.datetime.now(datetime.UTC)).total_seconds())
        headers = {"retry-after": str(max(reset, 1))}
        if app.daily_videos is not None and used["videos"] >= app.daily_videos:
            n = app.daily_videos
            raise APIError(429, f"Daily limit reached: {app.title} makes {n} video{'' if n == 1 else 's'} per user "
                           f"per day and {used['videos']} were made for you today; it starts again at 00:00 UTC",
                           None, "app_daily_videos", "insufficient_quota", headers)
        if app.daily_budget_s is not None and used["device_s"] + device_s > app.daily_budget_s:
            raise APIError(429, f"Daily budget reached: this video is estimated at {device_s:.3g} device-seconds "
                           f"and {used['device_s']:.3g} of your {app.daily_budget_s:g} device-seconds a day for "
                           f"{app.title} are spent or committed; it starts again at 00:00 UTC", None,
                           "app_daily_budget", "insufficient_quota", headers)
    return charge


async def read_inputs(request: Request, app: App, settings) -> tuple[dict, dict[str, Path]]:
    """The app's inputs from multipart/form-data (images as files), a urlencoded form, or a JSON object (images
    as base64 or data: URLs) -> (values, image files on disk). Size-limited like /v1/videos."""
    images = [i.name for i in app.inputs if i.type == "image"]
    limit = max(1, len(images)) * settings.max_upload_bytes + (1 << 20)
    request = Request(request.scope, _limited(request, limit, settings))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    values, files = {}, {}
    try:
        if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.form(max_files=max(1, len(images)), max_fields=64)
            try:
                for name, value in form.multi_items():
                    if name in values or name in files:
                        raise APIError(400, f"{name} is given twice", name, "invalid_value")
                    if not isinstance(value, UploadFile):
                        values[name] = value
                    elif name not in images:
                        raise APIError(400, f"{name} is not an image input of this app (images: "
                                       f"{', '.join(images) or 'none'})", name, "invalid_value")
                    elif value.filename:         # a file picker left empty sends a part with no file name
                        files[name] = await _save_upload(value, name, settings)
            finally:
                await form.close()
        elif content_type in ("application/json", "") or content_type.endswith("+json"):
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError as err:
                raise APIError(400, f"the body is not valid JSON: {err}", None, "invalid_json") from None
            if not isinstance(body, dict):
                raise APIError(400, "the body must be a JSON object of the app's inputs", None, "invalid_json")
            for name, value in body.items():
                if name in images and value not in (None, ""):
                    files[name] = _save_base64(value, name, settings)
                elif name not in images:
                    values[name] = value
        else:
            raise APIError(415, f"Content-Type {content_type!r} is not supported: multipart/form-data or "
                           "application/json", None, "unsupported_media_type")
    except BaseException:
        for path in files.values():
            path.unlink(missing_ok=True)
        raise
    return values, files


def _save_base64(value, name: str, settings) -> Path:
    if not isinstance(value, str):
        raise APIError(400, f"{name} in JSON is an image as a base64 string or a data: URL", name, "invalid_type")
    encoded = re.sub(r"^data:[\w/+.-]*(;[\w=-]+)*;base64,", "", value.strip())
    if len(encoded) > settings.max_upload_bytes * 4 // 3 + 4:
        raise APIError(413, f"{name} is larger than the {settings.max_upload_bytes} bytes allowed", name,
                       "file_too_large")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"{name} is not valid base64 (an image as a base64 string or a data: URL)", name,
                       "invalid_media") from None
    if not data:
        raise APIError(400, f"{name} is empty (0 bytes)", name, "invalid_media")
    path = settings.upload_dir / f"{secrets.token_hex(12)}.upload"
    path.write_bytes(data)
    return path


def _input_named(app: App, api_field: str | None) -> str | None:
    """The input that sets an API field (an error's `param`), if one does."""
    for i in app.inputs:
        target = (i.to or "image") if i.type == "image" else i.to
        if target is not None and API_NAME.get(target, target) == api_field:
            return i.name
    return None


def mount_apps(server, ctx) -> None:
    """The apps of Settings.apps_dir at /apps/NAME, their API in /openapi.json, their feeds."""
    settings, store = ctx.settings, ctx.store
    folder = Path(settings.apps_dir)
    if not folder.is_dir():
        raise InvalidRequest("apps", str(folder), "a folder of app files (NAME.toml); `straightline app new NAME` "
                             "writes one")
    registry = AppRegistry(folder, interval=settings.apps_reload_s, info=ctx.info)
    server.state.apps = registry
    feeds: dict[str, LazyFeed] = {}
    embedder = getattr(server.state, "feed_embedder", None) or make_embedder(settings.feed_embedder)

    def lookup(name: str) -> App:
        app = registry.get(name)
        if app is not None:
            return app
        if name in registry.errors:
            err = registry.errors[name]
            raise APIError(503, f"The app '{name}' cannot be served until its file is fixed: {_shown(err)}",
                           err.field or None, "app_file_error", "server_error")
        known = ", ".join(sorted(registry.apps())) or "none"
        raise APIError(404, f"No app named '{name}' (apps: {known})", None, "app_not_found")

    def stale(name: str) -> str:
        err = registry.errors.get(name)
        return f"Its file has an error, so its last good version is serving: {_shown(err)}" if err else ""

    def html_error(err: APIError) -> HTMLResponse:
        return HTMLResponse(f"<!doctype html><meta charset='utf-8'><title>{err.status}</title>"
                            f"<body style='font-family:system-ui;max-width:40rem;margin:2rem auto'><h1>{err.status}"
                            f"</h1><p>{html.escape(err.message)}</p><p><a href='/apps'>All apps</a></p>",
                            status_code=err.status)

    # --- the index ---------------------------------------------------------------------------------------

    def listing() -> dict:
        apps = registry.apps()
        data = [{"object": "app", "name": a.name, "title": a.title, "description": a.description,
                 "url": f"/apps/{a.name}", "api_url": f"/apps/{a.name}/api",
                 "feed_url": f"/apps/{a.name}/feed" if a.feed else None, "access": _access(a),
                 "daily_budget_s": a.daily_budget_s, "daily_videos": a.daily_videos,
                 "error": _shown(registry.errors[a.name]) if a.name in registry.errors else None}
                for a in sorted(apps.values(), key=lambda a: a.name)]
        errors = [{"name": name, "message": _shown(err), "field": err.field, "reason": err.reason,
                   "serving": name in apps} for name, err in sorted(registry.errors.items())]
        return {"object": "list", "data": data, "errors": errors}

    @server.get("/v1/apps", tags=["apps"], summary="The apps and the app files with errors")
    def apps_json():
        return listing()

    @server.get("/apps", response_class=HTMLResponse, include_in_schema=False)
    def apps_page():
        e, found = html.escape, listing()
        rows = "".join(
            f"<li><a href='{e(a['url'])}'>{e(a['title'])}</a> — {e(a['description'])}"
            + (f" · <a href='{e(a['feed_url'])}'>feed</a>" if a["feed_url"] else "")
            + f" <small>({e(a['access'])}; API: POST {e(a['api_url'])})</small></li>" for a in found["data"])
        errors = "".join(f"<li class='error'><b>{e(x['name'])}</b>: {e(x['message'])}"
                         + (" <small>(its last good version is serving)</small>" if x["serving"] else "")
                         + "</li>" for x in found["errors"])
        return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Apps</title><style>body{{font-"
                f"family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}}li{{margin:.6rem 0}}"
                f".error{{color:#b00}}</style></head><body><h1>Apps</h1><ul id='apps'>{rows or '<li>none yet</li>'}"
                f"</ul>" + (f"<h2>Files with errors</h2><ul id='errors'>{errors}</ul>" if errors else "")
                + "<p><small>A file in the apps folder is an app: `straightline app new NAME`.</small></p>"
                "</body></html>")

    # --- one app -------------------------------------------------------------------------------------------

    @server.get("/apps/{name}", response_class=HTMLResponse, include_in_schema=False)
    def app_page(name: str):
        try:
            app = lookup(name)
        except APIError as err:
            return html_error(err)
        links = {"All apps": "/apps"} | ({"Feed": f"/apps/{name}/feed"} if app.feed else {})
        return form_html(app, api_url=f"/apps/{name}/api", videos_url=f"/apps/{name}/videos", links=links,
                         notice=stale(name))

    def create(app: App, caller, values: dict, files: dict, headers) -> tuple[dict, bool]:
        try:
            fields = app.render(values, files)
        except InvalidRequest as err:
            raise APIError(400, str(err), err.field, "invalid_value") from None
        body, inputs = to_api(fields)
        user = caller.budget_user
        try:
            return ctx.create_job(headers, caller.owner, caller.key, body, inputs, dedupe=False,
                                  charge=budget_check(store, app, user),
                                  tag={"app": app.name, "user_name": user, "ticket": None})
        except APIError as err:            # a field an input sets is named by that input, an upload by its input
            name = _input_named(app, err.param)
            if name is not None:
                err.param = name
                for input_name, path in files.items():
                    err.message = err.message.replace(str(path), input_name)
                err.args = (err.message,)
            raise

    @server.post("/apps/{name}/api", include_in_schema=False)
    async def app_api(name: str, request: Request):
        app = await run_in_threadpool(lookup, name)
        caller = await run_in_threadpool(ctx.identify, request, True)
        admit(app, caller)
        values, files = await read_inputs(request, app, settings)
        try:
            made = await run_in_threadpool(create, app, caller, values, files, request.headers)
        finally:
            for path in files.values():
                path.unlink(missing_ok=True)
        return ctx.respond(*made)

    @server.get("/apps/{name}/api", tags=["apps"], summary="An app, its request schema and your use of it today")
    def app_info(name: str, request: Request):
        app = lookup(name)
        caller = ctx.identify(request, True)
        used = store.app_usage(app.name, caller.budget_user, since=_midnight().timestamp())
        return {"object": "app", "name": app.name, "title": app.title, "description": app.description,
                "access": _access(app), "feed": app.feed, "schema": json_schema(app), "generation": app.generation,
                "usage": {"user": caller.budget_user, **used, "daily_budget_s": app.daily_budget_s,
                          "daily_videos": app.daily_videos},
                "error": stale(name) or None}

    def app_job(name: str, video_id: str, request: Request) -> dict:
        if registry.get(name) is None and name not in registry.errors:
            lookup(name)          # the 404
        return ctx.find(video_id, ctx.identify(request, True).owner)

    @server.get("/apps/{name}/videos/{video_id}", tags=["apps"], summary="A video you made with the app")
    def app_video(name: str, video_id: str, request: Request):
        return ctx.respond(app_job(name, video_id, request), True)

    @server.get("/apps/{name}/videos/{video_id}/content", tags=["apps"], summary="Its file")
    def app_video_content(name: str, video_id: str, request: Request) -> Response:
        return ctx.content(app_job(name, video_id, request), request.query_params.get("variant", "video"))

    # --- the feeds of apps with feed = true ----------------------------------------------------------------

    def app_feed(request: Request) -> QueuedFeed:
        app = lookup(request.path_params["name"])
        if not app.feed:
            raise APIError(404, f"The app '{app.name}' has no feed (its file says feed = false)", None,
                           "feed_not_found")
        config = feed_config(settings, request=app.fixed_fields(), daily_budget_s=app.daily_budget_s)
        if app.name not in feeds:
            feeds[app.name] = LazyFeed(None)
        lazy = feeds[app.name]
        lazy.build = lambda: QueuedFeed(ctx, f"app:{app.name}", f"feed:{app.name}", config, embedder, app=app.name,
                                        charge=lambda user: budget_check(store, app, user))
        return lazy.get(key=(config.request, config.daily_budget_s, app.daily_videos, app.access))

    def app_feed_user(request: Request) -> str:
        app = lookup(request.path_params["name"])
        caller = ctx.identify(request, True)
        admit(app, caller)
        return caller.budget_user

    def app_feed_title(request: Request) -> str:
        app = lookup(request.path_params["name"])
        if not app.feed:
            raise APIError(404, f"The app '{app.name}' has no feed (its file says feed = false)", None,
                           "feed_not_found")
        return app.title

    add_feed_routes(server, "/apps/{name}/feed", "/apps/{name}/feed", app_feed, app_feed_user, app_feed_title)

    # --- /openapi.json: one operation per app, as the files are now -------------------------------------------

    base_openapi = server.openapi

    def openapi() -> dict:
        schema = copy.deepcopy(base_openapi())
        for name, app in sorted(registry.apps().items()):
            operation = openapi_operation(app) | {"tags": ["apps"], "responses": {
                "200": {"description": "The video object of the job (poll GET /apps/NAME/videos/ID)"},
                "400": {"description": "An input is not allowed (`param` names it)"},
                "401": {"description": "Sign in"}, "403": {"description": "Not open to this user"},
                "429": {"description": "The user's daily budget or video count for this app is used up"}}}
            schema["paths"][f"/apps/{name}/api"] = {"post": operation} | schema["paths"].get(f"/apps/{name}/api", {})
        return schema

    server.openapi = openapi


__all__ = ["admit", "budget_check", "mount_apps", "read_inputs"]
