// The lightact page: pick a model, give it a file (or a camera clip), show what it says.
// Plain DOM code; every text from the server or the file goes in through textContent.
"use strict";

const $ = (id) => document.getElementById(id);
let models = [];
let limits = null;
let recorded = null; // a File from the camera, used when no file is chosen

function show(el, on) { el.hidden = !on; }

function fail(message) {
  $("error").textContent = message;
  show($("error"), true);
}

function describe(model) {
  const kinds = model.kinds.join(", ");
  return `${model.modality} model (${model.model}), ${model.classes} classes; takes ${kinds} files`;
}

async function loadModels() {
  try {
    const response = await fetch("/models");
    const data = await response.json();
    models = data.models;
    limits = data.limits;
  } catch (err) {
    fail(`cannot reach the server: ${err}`);
    return;
  }
  const select = $("model");
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = `${m.name} (${m.modality})`;
    select.appendChild(option);
  }
  select.addEventListener("change", modelChanged);
  modelChanged();
  $("limits").textContent =
    `Files up to ${limits.max_upload_mb} MB, videos up to ${limits.max_video_s} s; ` +
    `results are kept ${Math.round(limits.keep_s / 60)} min.`;
}

function current() { return models.find((m) => m.name === $("model").value); }

function modelChanged() {
  const model = current();
  if (!model) return;
  $("model-info").textContent = describe(model);
  const unit = model.window_unit;
  $("window").placeholder = `model default (${unit})`;
  const camera = model.kinds.includes("video") && navigator.mediaDevices &&
    navigator.mediaDevices.getUserMedia && window.MediaRecorder;
  show($("camera"), Boolean(camera));
}

async function record() {
  const seconds = Number($("record-seconds").value);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (err) {
    fail(`no camera: ${err.message || err}`);
    return;
  }
  const preview = $("preview");
  preview.srcObject = stream;
  show(preview, true);
  await preview.play().catch(() => {});
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  $("record").disabled = true;
  recorder.start();
  for (let left = seconds; left > 0; left--) {
    $("recorded").textContent = `recording... ${left} s`;
    await new Promise((r) => setTimeout(r, 1000));
  }
  recorder.stop();
  await stopped;
  stream.getTracks().forEach((t) => t.stop());
  show(preview, false);
  $("record").disabled = false;
  const type = recorder.mimeType || "video/webm";
  recorded = new File(chunks, "camera.webm", { type });
  $("file").value = "";
  $("recorded").textContent = `recorded ${seconds} s (${(recorded.size / 1e6).toFixed(1)} MB): press Recognise`;
}

function percent(p) { return `${(100 * p).toFixed(1)}%`; }

function topkText(topk) {
  return topk.map((c) => `${c.label} ${percent(c.probability)}`).join(", ");
}

function windowTable(prediction) {
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const name of ["window", "start (s)", "end (s)", "top classes"]) {
    const th = document.createElement("th");
    th.textContent = name;
    head.appendChild(th);
  }
  const body = table.createTBody();
  prediction.windows.forEach((w, i) => {
    const row = body.insertRow();
    const cells = [String(i + 1), w.start_time.toFixed(2), w.end_time.toFixed(2),
      w.topk.length ? topkText(w.topk) : "(no person)"];
    cells.forEach((text, j) => {
      const td = row.insertCell();
      td.textContent = text;
      if (j < 3) td.className = "num";
    });
  });
  return table;
}

function showResult(data) {
  const names = data.predictions.map((p) => {
    const who = p.persons && p.persons.length ? ` (person ${p.persons.join("+")})` : "";
    return `${p.label} ${percent(p.score)}${who}`;
  });
  $("summary").textContent = `${data.file}: ${names.join("; ")}`;
  const video = $("result-video");
  const image = $("result-image");
  show(video, false);
  show(image, false);
  video.removeAttribute("src");
  if (data.render_url && data.render_url.endsWith(".mp4")) {
    video.src = data.render_url;
    show(video, true);
    video.play().catch(() => {});
  } else if (data.render_url) {
    image.src = data.render_url;
    show(image, true);
  }
  $("render-note").textContent = data.render_note || `${data.model}, ${data.seconds.toFixed(1)} s`;
  const timelines = $("timelines");
  const tables = $("tables");
  timelines.replaceChildren();
  tables.replaceChildren();
  data.predictions.forEach((p, i) => {
    if (p.timeline_url) {
      const img = document.createElement("img");
      img.id = `timeline-${i}`;
      img.alt = `timeline of ${p.source}`;
      img.src = p.timeline_url;
      timelines.appendChild(img);
    }
    const title = document.createElement("h3");
    const who = p.persons && p.persons.length ? `person ${p.persons.join("+")}: ` : "";
    title.textContent = `${who}overall ${topkText(p.topk)}`;
    tables.append(title, windowTable(p));
  });
  show($("empty"), false);
  show($("result"), true);
}

function submit(event) {
  event.preventDefault();
  show($("error"), false);
  const file = $("file").files[0] || recorded;
  if (!file) { fail("choose a file (or record a clip) first"); return; }
  if (limits && file.size > limits.max_upload_mb * 1024 * 1024) {
    fail(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; this server takes up to ${limits.max_upload_mb} MB`);
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("model", $("model").value);
  for (const name of ["window", "stride", "topk"]) {
    if ($(name).value) form.append(name, $(name).value);
  }
  form.append("render", $("render").checked ? "true" : "false");

  const xhr = new XMLHttpRequest();
  const progress = $("progress");
  const status = $("status");
  const started = Date.now();
  let timer = null;
  $("go").disabled = true;
  show($("progress-box"), true);
  progress.value = 0;
  progress.max = 1;
  status.textContent = "uploading...";
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) progress.value = e.loaded / e.total;
  };
  xhr.upload.onload = () => {
    progress.removeAttribute("value"); // indeterminate while the model works
    timer = setInterval(() => {
      status.textContent = `working... ${Math.round((Date.now() - started) / 1000)} s`;
    }, 250);
  };
  const done = () => {
    clearInterval(timer);
    $("go").disabled = false;
    show($("progress-box"), false);
  };
  xhr.onload = () => {
    done();
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
    if (xhr.status === 200 && data) { showResult(data); return; }
    const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail))
      : xhr.responseText;
    const what = { 413: "too large", 415: "unsupported file", 429: "server busy, try again shortly",
      504: "took too long" }[xhr.status];
    fail(`${what ? what + ": " : ""}${detail} (HTTP ${xhr.status})`);
  };
  xhr.onerror = () => { done(); fail("the upload failed (connection lost)"); };
  xhr.open("POST", "/predict");
  xhr.send(form);
}

$("form").addEventListener("submit", submit);
$("record").addEventListener("click", record);
$("file").addEventListener("change", () => { recorded = null; $("recorded").textContent = ""; });
loadModels();
