// The rtgenre page: live streams from /events (Server-Sent Events), uploads to /classify. No dependencies.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf", "#393b79", "#ad494a"];
const HISTORY_S = 300;
const colours = new Map();
const streams = new Map();

function colour(genre) {
  if (!colours.has(genre)) {
    colours.set(genre, PALETTE[colours.size % PALETTE.length]);
    document.getElementById("legend").appendChild(el("li", {}, swatch(colours.get(genre)), ` ${genre}`));
  }
  return colours.get(genre);
}

function pct(x) { return `${Math.round(x * 100)}%`; }

// elements built from text, never from HTML strings: labels and file names come from outside
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

function swatch(c) { return el("span", {class: "swatch", style: `background:${c}`}); }

function card(id) {
  if (streams.has(id)) return streams.get(id);
  const node = document.getElementById("stream-template").content.firstElementChild.cloneNode(true);
  node.dataset.stream = id;
  node.querySelector(".name").textContent = id;
  document.getElementById("streams").appendChild(node);
  document.getElementById("no-streams").hidden = true;
  const s = {node, history: []};
  streams.set(id, s);
  return s;
}

function drop(id) {
  const s = streams.get(id);
  if (!s) return;
  s.node.remove();
  streams.delete(id);
  document.getElementById("no-streams").hidden = streams.size > 0;
}

function show(msg) {
  if (msg.type === "eos") {
    const s = streams.get(msg.stream);
    if (s) {
      s.node.querySelector(".state").textContent = `ended (${msg.reason})`;
      s.node.dataset.state = "ended";
      setTimeout(() => drop(msg.stream), 10000);
    }
    return;
  }
  const s = card(msg.stream);
  const n = s.node;
  const genre = msg.smoothed_top;
  n.dataset.genre = genre || "";
  n.dataset.state = msg.state;
  n.querySelector(".genre").textContent = genre || "–";
  n.querySelector(".genre").style.borderColor = genre ? colour(genre) : "transparent";
  n.querySelector(".confidence").textContent = genre ? pct(msg.smoothed_confidence) : "";
  n.querySelector(".state").textContent = msg.state === "genre" ? "" : `(${msg.state})`;
  const stats = msg.stats || {};
  const source = msg.source || {};
  const parts = [];
  if (msg.level_dbfs !== undefined) parts.push(`level ${Math.round(msg.level_dbfs)} dBFS`);
  const provider = msg.provider || stats.provider;
  if (provider) parts.push(provider.replace("ExecutionProvider", ""));
  if (stats.latency_ms_p50 != null) s.latency = `latency p50 ${stats.latency_ms_p50} ms, p99 ${stats.latency_ms_p99} ms`;
  if (s.latency) parts.push(s.latency);
  if (source.state && source.state !== "running") parts.push(`source ${source.state}`);
  n.querySelector(".meta").textContent = parts.join(" · ");
  const probs = msg.smoothed || {};
  const bars = n.querySelector(".bars");
  if (bars.children.length !== Object.keys(probs).length) {
    bars.replaceChildren(...Object.keys(probs).map(g => el("li", {"data-genre": g}, el("span", {class: "label"}, g),
      el("span", {class: "bar"}, el("span", {class: "fill"})), el("span", {class: "value"}))));
  }
  for (const li of bars.children) {
    const p = probs[li.dataset.genre] ?? 0;
    li.querySelector(".fill").style.width = pct(p);
    li.querySelector(".fill").style.background = colour(li.dataset.genre);
    li.querySelector(".value").textContent = pct(p);
  }
  const now = Date.now() / 1000;
  s.history.push([now, genre]);
  while (s.history.length && s.history[0][0] < now - HISTORY_S) s.history.shift();
  timeline(n.querySelector(".timeline"), s.history, now);
}

function timeline(canvas, history, now) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  for (let i = 0; i < history.length; i++) {
    const [t, genre] = history[i];
    const next = i + 1 < history.length ? history[i + 1][0] : now;
    ctx.fillStyle = genre ? colour(genre) : "#ddd";
    const x = (t - (now - HISTORY_S)) / HISTORY_S * w;
    ctx.fillRect(x, 0, Math.max(1, (next - t) / HISTORY_S * w), h);
  }
  const last = history.length ? history[history.length - 1][1] : null;
  canvas.setAttribute("aria-label", `genre timeline, now ${last || "no genre"}`);
}

function connect() {
  const status = document.getElementById("connection");
  const events = new EventSource("events");
  events.onopen = () => { status.textContent = "live"; };
  events.onerror = () => { status.textContent = "disconnected: retrying…"; };
  events.onmessage = e => show(JSON.parse(e.data));
}

function plot(result) {
  const canvas = document.getElementById("result-plot");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const rows = result.window_probs;
  const end = rows.length ? result.window_times[rows.length - 1][1] : 1;
  rows.forEach((p, i) => {
    if (p.some(x => x === null)) return;
    const best = p.indexOf(Math.max(...p));
    const [t0, t1] = result.window_times[i];
    ctx.fillStyle = colour(result.labels[best]);
    const x = t0 / end * w, width = Math.max(1, (t1 - t0) / end * w / 2);
    ctx.fillRect(x, h - p[best] * h, width, p[best] * h);
  });
}

async function upload(event) {
  event.preventDefault();
  const file = document.getElementById("file").files[0];
  const status = document.getElementById("upload-status");
  const box = document.getElementById("result");
  if (!file) return;
  box.hidden = true;
  status.textContent = `classifying ${file.name}…`;
  let body;
  try {
    const r = await fetch("classify", {method: "POST", body: file, headers: {"X-Filename": file.name}});
    body = await r.json();
  } catch (e) {
    status.textContent = `error: ${e}`;
    return;
  }
  if (body.error) {
    status.textContent = `error: ${body.error}`;
    status.dataset.error = body.error;
    return;
  }
  status.textContent = "";
  const verdict = document.getElementById("verdict");
  verdict.dataset.genre = body.genre || "";
  verdict.dataset.confidence = body.confidence;
  verdict.textContent = body.genre
    ? `${body.file}: ${body.genre} ${pct(body.confidence)} over ${body.windows} windows${body.padded ? " (shorter than one window: looped)" : ""}`
    : `${body.file}: ${body.state === "too short" ? "shorter than 0.5 s of audio" : "silent throughout"}: no genre`;
  const tbody = document.querySelector("#result-probs tbody");
  tbody.replaceChildren(...Object.entries(body.probs || {}).sort((a, b) => b[1] - a[1]).map(([g, p]) =>
    el("tr", {}, el("td", {}, swatch(colour(g)), ` ${g}`), el("td", {}, pct(p)))));
  plot(body);
  box.hidden = false;
}

document.getElementById("upload").addEventListener("submit", upload);
connect();
