"""The studio: one web page served at `/`, plain HTML and JavaScript over the public API (no build step).

Prompt with the expanded prompt and a price quote as you type, aspect presets, duration, quality (steps), seed,
an image or video input for the prompting modes, a queue with live progress and cancel, a gallery that plays
the results with remix / extend / loop buttons, each job's cost, and the budget left when keys are in use.
Every action is a call a client could make itself (POST /v1/videos, …/quote, …/cancel, …/remix, GET …/content,
/v1/usage); a new Idempotency-Key per click makes each click one video.
"""

STUDIO_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>straightline studio</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
  header { padding: 12px 20px; background: #1b1b1b; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  main { display: grid; grid-template-columns: 380px 1fr; gap: 20px; padding: 20px; }
  label { display: block; margin: 8px 0 2px; color: #aaa; font-size: 13px; }
  textarea, input, select, button { font: inherit; background: #222; color: #eee; border: 1px solid #444;
                                    border-radius: 4px; padding: 5px; box-sizing: border-box; }
  textarea { width: 100%; height: 80px; }
  .row { display: flex; gap: 8px; } .row > * { flex: 1; }
  button { cursor: pointer; } button.primary { background: #2d6cdf; border-color: #2d6cdf; margin-top: 12px; width: 100%; }
  #aspects button.on { background: #2d6cdf; }
  #expanded { color: #9c9; font-size: 13px; min-height: 1em; } #quote { color: #aaa; font-size: 13px; }
  #error { color: #f77; min-height: 1em; white-space: pre-wrap; }
  #queue li { list-style: none; margin: 6px 0; } progress { width: 160px; vertical-align: middle; }
  #gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 14px; }
  .card { background: #1b1b1b; border-radius: 6px; padding: 8px; } .card video { width: 100%; background: #000; }
  .card .meta { font-size: 12px; color: #aaa; } .card button { font-size: 12px; margin: 4px 4px 0 0; }
</style>
</head>
<body>
<header><h1>straightline studio</h1><span id="budget"></span>
  <span id="keybox" hidden><input id="key" placeholder="API key (sk-sl-…)" size="34"></span></header>
<main>
<section>
  <label for="prompt">Prompt</label>
  <textarea id="prompt" placeholder="a red ball bouncing on a wooden floor"></textarea>
  <label><input type="checkbox" id="expand" checked> expand the prompt</label>
  <div id="expanded"></div>
  <label>Aspect</label>
  <div id="aspects" class="row"></div>
  <div class="row">
    <div><label for="resolution">Resolution</label><select id="resolution"><option value="">model's</option>
      <option>128</option><option>192</option><option>256</option></select></div>
    <div><label for="seconds">Seconds</label><input id="seconds" type="number" min="0" max="60" step="0.5"
      placeholder="model's"></div>
  </div>
  <div class="row">
    <div><label for="steps">Quality (steps)</label><input id="steps" type="number" min="1" max="200"
      placeholder="model's"></div>
    <div><label for="seed">Seed</label><input id="seed" type="number" min="0" placeholder="random"></div>
  </div>
  <label for="mode">Mode</label>
  <select id="mode"><option value="generate">text (and a first image) to video</option>
    <option value="image">image</option><option value="extend">extend a video</option>
    <option value="loop">loop</option><option value="edit">edit a video</option>
    <option value="connect">connect two videos</option></select>
  <label for="file">Image or video input</label><input id="file" type="file" accept="image/*,video/*">
  <label for="endfile">End image or video (connect)</label><input id="endfile" type="file" accept="image/*,video/*">
  <button id="submit" class="primary">Generate</button>
  <div id="quote"></div>
  <div id="error"></div>
  <h3>Queue</h3><ul id="queue"></ul>
</section>
<section><h3>Gallery</h3><div id="gallery"></div></section>
</main>
<script>
const $ = (id) => document.getElementById(id);
const ASPECTS = ["16:9", "9:16", "1:1", "4:3", "21:9"];
let aspect = "16:9";
const jobs = new Map();           // id -> last video object
const shown = new Set();          // ids in the gallery

function headers(extra) {
  const key = localStorage.getItem("straightline-key");
  return Object.assign({}, extra || {}, key ? {Authorization: "Bearer " + key} : {});
}
async function api(path, options) {
  options = options || {};
  const response = await fetch(path, Object.assign({}, options, {headers: headers(options.headers)}));
  const json = (response.headers.get("content-type") || "").includes("json");
  const body = json ? await response.json() : await response.blob();
  if (response.status === 401) { $("keybox").hidden = false; }
  if (!response.ok) {
    const error = new Error(json && body.error ? body.error.message : response.statusText);
    error.param = json && body.error ? body.error.param : null;
    throw error;
  }
  return body;
}
function newKey() {
  return (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now());
}
function fields() {
  const form = new FormData();
  form.set("prompt", $("prompt").value);
  const mode = $("mode").value;
  form.set("mode", mode);
  form.set("expand_prompt", $("expand").checked ? "true" : "false");
  if (!$("file").files.length || mode === "generate" || mode === "image") {
    form.set("aspect", aspect);
    if ($("resolution").value) form.set("resolution", $("resolution").value);
  }
  if ($("seconds").value && mode !== "image") form.set("seconds", $("seconds").value);
  for (const name of ["steps", "seed"]) if ($(name).value) form.set(name, $(name).value);
  if ($("file").files.length) form.set("input_reference", $("file").files[0]);
  if ($("endfile").files.length) form.set("end_reference", $("endfile").files[0]);
  return form;
}
function showError(error) {
  $("error").textContent = error ? (error.param ? error.param + ": " : "") + error.message : "";
}
let quoteTimer = null;
function requote() {
  clearTimeout(quoteTimer);
  quoteTimer = setTimeout(async () => {
    if (!$("prompt").value.trim() && !$("file").files.length) { $("quote").textContent = ""; return; }
    try {
      const q = await api("/v1/videos/quote", {method: "POST", body: fields()});
      $("expanded").textContent = q.expanded_prompt ? "→ " + q.expanded_prompt : "";
      $("quote").textContent = `${q.size}, ${q.seconds} s, ${q.frames} frames, ${q.steps} steps: ` +
        `~${q.estimated_device_s} device s, ${q.price.toFixed(6)} ${q.currency}; ${q.queued} queued`;
      showError(null);
    } catch (error) { $("quote").textContent = ""; showError(error); }
  }, 300);
}
async function submit(form, path) {
  showError(null);
  try {
    const json = typeof form === "string" ? {"Content-Type": "application/json"} : {};
    const video = await api(path || "/v1/videos", {method: "POST", body: form,
                                                   headers: Object.assign({"Idempotency-Key": newKey()}, json)});
    jobs.set(video.id, video);
    render();
  } catch (error) { showError(error); }
}
function render() {
  const queue = $("queue");
  for (const [id, v] of jobs) {
    let li = queue.querySelector(`li[data-id="${id}"]`);
    const active = v.status === "queued" || v.status === "in_progress";
    if (!active) { if (li) li.remove(); if (v.status === "completed") addToGallery(v); continue; }
    if (!li) {
      li = document.createElement("li");
      li.dataset.id = id;
      li.innerHTML = '<progress max="100"></progress> <span class="status"></span> <button class="cancel">cancel</button>';
      li.querySelector(".cancel").onclick = () => api(`/v1/videos/${id}/cancel`, {method: "POST"})
        .then((v) => { jobs.set(id, v); render(); }).catch(showError);
      queue.prepend(li);
    }
    li.querySelector("progress").value = v.progress;
    li.querySelector(".status").textContent = `${v.status}` + (v.queue_position ? ` #${v.queue_position}` : "") +
      ` ${v.progress}% — ${v.prompt.slice(0, 40)}`;
  }
  for (const [id, v] of jobs) {
    if (v.status === "failed" && !shown.has(id)) {
      shown.add(id);
      const li = document.createElement("li");
      li.className = "failed";
      li.textContent = `${v.error ? v.error.code : "failed"}: ${v.prompt.slice(0, 40)}`;
      queue.append(li);
    }
  }
}
async function addToGallery(v) {
  if (shown.has(v.id)) return;
  shown.add(v.id);
  const card = document.createElement("div");
  card.className = "card";
  card.dataset.id = v.id;
  const video = document.createElement("video");
  Object.assign(video, {controls: true, loop: true, muted: true, autoplay: true, playsInline: true});
  const meta = document.createElement("div");
  meta.className = "meta";
  const cost = v.cost.price == null ? "" : `, ${v.cost.price.toFixed(6)} ${v.cost.currency}, ${v.cost.device_s} device s`;
  meta.textContent = `${v.size}, ${v.seconds} s, seed ${v.seed}${cost} — ${v.prompt}`;
  const buttons = document.createElement("div");
  for (const [name, action] of [["remix", remix], ["extend", extend], ["loop", loop]]) {
    const b = document.createElement("button");
    b.className = name; b.textContent = name; b.onclick = () => action(v);
    buttons.append(b);
  }
  card.append(video, meta, buttons);
  $("gallery").prepend(card);
  const blob = await api(`/v1/videos/${v.id}/content`);
  video.src = URL.createObjectURL(blob);
  refreshUsage();
}
function remix(v) {
  submit(JSON.stringify({prompt: $("prompt").value || v.prompt}), `/v1/videos/${v.id}/remix`);
}
function derived(v, mode) {
  const form = new FormData();
  form.set("prompt", $("prompt").value); form.set("mode", mode); form.set("source_video_id", v.id);
  if ($("seconds").value) form.set("seconds", $("seconds").value);
  return form;
}
function extend(v) { submit(derived(v, "extend")); }
function loop(v) { submit(derived(v, "loop")); }
async function poll() {
  const active = [...jobs.values()].filter((v) => v.status === "queued" || v.status === "in_progress");
  await Promise.all(active.map((v) => api(`/v1/videos/${v.id}`).then((n) => jobs.set(n.id, n)).catch(() => {})));
  render();
  setTimeout(poll, 400);
}
async function refreshUsage() {
  try {
    const u = await api("/v1/usage");
    const budget = u.limits.daily_budget;
    $("budget").textContent = `today: ${u.today.videos} videos, ${u.today.price.toFixed(6)} ${u.currency}` +
      (budget ? `, ${budget.remaining.toFixed(6)} left of ${budget.limit}` : "");
  } catch (error) { /* no key yet */ }
}
for (const a of ASPECTS) {
  const b = document.createElement("button");
  b.textContent = a; b.dataset.aspect = a; b.className = a === aspect ? "on" : "";
  b.onclick = () => { aspect = a; for (const c of $("aspects").children) c.className = c === b ? "on" : ""; requote(); };
  $("aspects").append(b);
}
$("key").onchange = () => { localStorage.setItem("straightline-key", $("key").value.trim()); load(); };
for (const id of ["prompt", "expand", "resolution", "seconds", "steps", "seed", "mode", "file", "endfile"]) {
  $(id).addEventListener("input", requote);
}
$("submit").onclick = () => submit(fields());
async function load() {
  try {
    const page = await api("/v1/videos?limit=30");
    for (const v of page.data.reverse()) jobs.set(v.id, v);
    render();
  } catch (error) { showError(error); }
  refreshUsage();
}
load();
poll();
</script>
</body>
</html>
"""
