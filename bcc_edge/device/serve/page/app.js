"use strict";
// The page of `bcc-edge serve`: plain DOM, nothing loaded from elsewhere (the station may be
// offline). Text from a file name or the model always goes in as textContent, never as HTML.
// The counts and the CSV come from the server (/v1/tally, /v1/results.csv): one home for the
// intervals and the CSV quoting.

const IMAGE_NAME = /\.(jpe?g|png|bmp|tiff?|webp)$/i;
const BATCH_FILES = 16; // images per request: the first rows show while the rest upload
const PART_OVERHEAD = 1024; // multipart bytes per file beyond its content
const COUNT_EVERY_MS = 1000; // the count is refreshed at most this often while images arrive
const ORDER = { review: 0, error: 1, ok: 2 };
const REASONS = { low_confidence: "low confidence", out_of_distribution: "unlike the training images" };
const TOKEN_KEY = "bcc-edge-token";

const state = { model: null, cells: [], queue: [], busy: false, countedAt: 0 };
const $ = (id) => document.getElementById(id);

class NeedToken extends Error {}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    $("token-form").hidden = false;
    throw new NeedToken("this station needs its access token");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    const error = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    error.status = response.status;
    error.retryAfter = Number(response.headers.get("Retry-After")) || 2;
    throw error;
  }
  return response;
}

const postJSON = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function loadModel() {
  try {
    state.model = await (await api("/v1/model")).json();
  } catch (error) {
    if (!(error instanceof NeedToken)) $("model").textContent = "The model could not be loaded: " + error.message;
    return;
  }
  const m = state.model;
  $("model").textContent = `${m.name} (${m.format}, ${m.precision}), ${m.labels.length} classes. ${m.selftest.summary}`;
  pump();
}

// ------------------------------------------------------------------ images in

function addFiles(files) {
  for (const file of files) {
    if (file.name.startsWith(".") || !(IMAGE_NAME.test(file.name) || file.type.startsWith("image/"))) continue;
    const cell = { index: state.cells.length, file, url: URL.createObjectURL(file), row: null, node: null };
    state.cells.push(cell);
    state.queue.push(cell);
  }
  $("clear").disabled = state.cells.length === 0;
  progress();
  pump();
}

async function filesFromDrop(dataTransfer) {
  // Entries must be taken while the drop event runs; a folder is then walked at leisure.
  const items = [...dataTransfer.items].filter((item) => item.kind === "file");
  const sources = items.map((item) => (item.webkitGetAsEntry && item.webkitGetAsEntry()) || item.getAsFile());
  const files = [];
  for (const source of sources) {
    if (source instanceof File) files.push(source);
    else if (source) await walk(source, files);
  }
  return files;
}

async function walk(entry, files) {
  if (entry.name.startsWith(".")) return;
  if (entry.isFile) {
    files.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child, files);
    }
  }
}

function localError(cell, message) {
  return { path: cell.file.name, label: null, score: null, top_k: [], status: "error", reasons: [], error: message };
}

function takeBatch() {
  const { max_upload_bytes: limit, max_files: maxFiles } = state.model.server;
  const batch = [];
  let bytes = 0;
  while (state.queue.length && batch.length < Math.min(BATCH_FILES, maxFiles)) {
    const cell = state.queue[0];
    const size = cell.file.size + PART_OVERHEAD;
    if (size > limit) {
      state.queue.shift();
      cell.row = localError(cell, `too large to upload (over ${limit} bytes, --max-upload-mb)`);
      continue;
    }
    if (bytes + size > limit) break;
    batch.push(state.queue.shift());
    bytes += size;
  }
  return batch;
}

async function classify(batch) {
  const form = new FormData();
  for (const cell of batch) form.append("files", cell.file, cell.file.name);
  try {
    const rows = await (await api("/v1/classify?top_k=3", { method: "POST", body: form })).json();
    batch.forEach((cell, i) => { cell.row = rows[i]; });
  } catch (error) {
    if (error instanceof NeedToken) { state.queue.unshift(...batch); throw error; }
    if (error.status === 503) { state.queue.unshift(...batch); await sleep(1000 * error.retryAfter); return; }
    for (const cell of batch) cell.row = localError(cell, error.message);
  }
}

async function pump() {
  if (state.busy || !state.model) return;
  state.busy = true;
  try {
    while (state.queue.length) {
      const batch = takeBatch();
      if (batch.length) await classify(batch);
      render();
      progress();
      if (Date.now() - state.countedAt > COUNT_EVERY_MS || !state.queue.length) await refreshCount();
    }
  } catch (error) {
    if (!(error instanceof NeedToken)) $("progress").textContent = "Stopped: " + error.message;
  } finally {
    state.busy = false;
  }
}

function progress() {
  const done = state.cells.filter((c) => c.row).length;
  $("progress").textContent = state.cells.length ? `${done} of ${state.cells.length} images classified` : "";
}

// ------------------------------------------------------------------ cells

function render() {
  const done = state.cells.filter((c) => c.row);
  done.sort((a, b) => ORDER[a.row.status] - ORDER[b.row.status] || a.index - b.index);
  $("cells").replaceChildren(...done.map((cell) => cell.node || (cell.node = cellNode(cell))));
}

function cellNode(cell) {
  const row = cell.row;
  const figure = el("figure", "cell");
  figure.dataset.status = row.status;
  const image = el("img");
  image.src = cell.url;
  image.alt = row.path;
  image.loading = "lazy";
  const caption = el("figcaption");
  if (row.status === "error") {
    caption.append(el("div", "label", "unreadable"), el("span", "status", "error"), el("div", "error", row.error));
  } else {
    caption.append(el("div", "label", row.label), el("span", "score", `${(100 * row.score).toFixed(1)}% `), el("span", "status", row.status === "review" ? "referred" : "ok"));
    if (row.reasons.length) caption.append(el("div", "reasons", row.reasons.map((r) => REASONS[r] || r).join(", ")));
    if (row.status === "review" && state.model.server.reviews) caption.append(reviewControl(cell));
  }
  caption.append(el("div", "name", row.path));
  figure.append(image, caption);
  return figure;
}

function reviewControl(cell) {
  const box = el("div", "review");
  const select = el("select");
  select.setAttribute("aria-label", "the reviewer's label");
  for (const label of state.model.labels) {
    const option = el("option", "", label);
    option.value = label;
    option.selected = label === cell.row.label;
    select.append(option);
  }
  const button = el("button", "", "Save");
  button.type = "button";
  const done = el("div", "reviewed");
  button.addEventListener("click", async () => {
    button.disabled = true;
    const form = new FormData();
    form.append("file", cell.file, cell.file.name);
    form.append("label", select.value);
    try {
      const saved = await (await api("/v1/review", { method: "POST", body: form })).json();
      done.textContent = "saved as " + saved.label;
    } catch (error) {
      done.textContent = "not saved: " + error.message;
    } finally {
      button.disabled = false;
    }
  });
  const wrapper = el("div");
  box.append(select, button);
  wrapper.append(box, done);
  return wrapper;
}

// ------------------------------------------------------------------ the count

function rows() {
  return state.cells.filter((c) => c.row).map((c) => c.row);
}

async function refreshCount() {
  state.countedAt = Date.now();
  const all = rows();
  $("download").disabled = all.length === 0;
  if (!all.length) return;
  try {
    renderCount((await (await postJSON("/v1/tally", all)).json()).samples[0]);
  } catch (error) {
    if (error instanceof NeedToken) throw error;
    $("totals").textContent = "The count could not be updated (" + error.message + "); it will be with the next images.";
  }
}

function renderCount(sample) {
  $("totals").textContent = `${sample.n} cells: ${sample.accepted} accepted, ${sample.review} referred for review, ${sample.errors} unreadable. ` +
    "Percentages of the accepted cells, with their 95% (Wilson) intervals.";
  const body = $("count").tBodies[0];
  body.replaceChildren(...state.model.labels.map((label) => {
    const c = sample.classes[label];
    const tr = el("tr");
    const [lo, hi] = c.ci95;
    for (const text of [label, c.count, c.percent.toFixed(1), `${lo.toFixed(1)} \u2013 ${hi.toFixed(1)}`, sample.with_referred[label].percent.toFixed(1)]) tr.append(el("td", "", String(text)));
    return tr;
  }));
  $("count").hidden = false;
  const drift = sample.drift;
  $("drift").hidden = !drift.warning;
  $("drift").textContent = drift.warning
    ? `Warning: ${drift.flagged} of ${sample.accepted + sample.review} images (${(100 * drift.share).toFixed(0)}%) do not look like the training images: another stain, scanner or focus? Check before trusting the count.`
    : "";
}

async function download() {
  try {
    const blob = await (await postJSON("/v1/results.csv", rows())).blob();
    const link = el("a");
    link.href = URL.createObjectURL(blob);
    link.download = "results.csv";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    $("progress").textContent = "No download: " + error.message;
  }
}

function clear() {
  for (const cell of state.cells) URL.revokeObjectURL(cell.url);
  state.cells = [];
  state.queue = [];
  $("cells").replaceChildren();
  $("count").hidden = true;
  $("drift").hidden = true;
  $("totals").textContent = "No cells yet.";
  $("download").disabled = true;
  $("clear").disabled = true;
  progress();
}

// ------------------------------------------------------------------ wiring

function start() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(await filesFromDrop(event.dataTransfer));
  });
  for (const id of ["files", "folder"]) {
    $(id).addEventListener("change", (event) => { addFiles([...event.target.files]); event.target.value = ""; });
  }
  $("download").addEventListener("click", download);
  $("clear").addEventListener("click", clear);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token-form").hidden = true;
    loadModel();
  });
  loadModel();
}

start();
