/// Placement's live status page, served at `/` of its operations port: the
/// ring drawn as a circle with each member's arcs, the members and their
/// states, the migrations with progress bars, and the event stream. It reads
/// `/api/cluster` and listens to `/events` (server-sent events), and fetches
/// the cluster again after each membership, ring or migration event.
///
/// One self-contained page (no scripts or styles from elsewhere, so it works
/// with no internet and under a strict Content-Security-Policy of its own).
/// Elements carry `data-*` attributes that the browser test reads.
enum StatusPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Ringstore</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { opacity: .8; }
  #live { margin-left: auto; }
  #live.on::before { content: "\25CF "; color: #4caf50; }
  #live.off::before { content: "\25CF "; color: #e53935; }
  main { display: grid; grid-template-columns: 380px 1fr; gap: 16px; padding: 16px 20px; }
  section { background: #fff; border-radius: 6px; box-shadow: 0 1px 2px rgba(0,0,0,.08); padding: 12px 14px; }
  h2 { font-size: 14px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em; color: #5a6475; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eceef2; white-space: nowrap; }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
  .state-up { color: #2e7d32; } .state-suspect { color: #ef6c00; } .state-down { color: #c62828; } .state-leaving { color: #6a1b9a; }
  .bar { background: #eceef2; border-radius: 3px; height: 10px; width: 160px; overflow: hidden; display: inline-block; vertical-align: middle; }
  .bar > div { background: #1976d2; height: 100%; }
  #events { font-family: ui-monospace, monospace; font-size: 12px; max-height: 420px; overflow-y: auto; }
  #events div { padding: 2px 0; border-bottom: 1px dotted #eceef2; }
  #events .topic { display: inline-block; min-width: 84px; color: #5a6475; }
  .wide { grid-column: 1 / 3; }
  .empty { color: #8a93a3; }
</style>
</head>
<body>
<header>
  <h1>Ringstore</h1>
  <span class="meta">epoch <b id="epoch">-</b> · ring epoch <b id="ring-epoch">-</b> · N=<b id="replicas">-</b> · plan <b id="plan">-</b></span>
  <span id="live" class="off">connecting</span>
</header>
<main>
  <section>
    <h2>Ring</h2>
    <svg id="ring" viewBox="-160 -160 320 320" width="340" height="340" role="img" aria-label="the ring"></svg>
  </section>
  <section>
    <h2>Members (<span id="member-count">0</span>)</h2>
    <table><thead><tr><th>member</th><th>state</th><th>weight</th><th>share</th><th>caught up</th></tr></thead>
      <tbody id="members"></tbody></table>
  </section>
  <section class="wide">
    <h2>Migrations</h2>
    <table><thead><tr><th>transfer</th><th>from</th><th>to</th><th>arcs</th><th>progress</th><th>rate</th><th>error</th></tr></thead>
      <tbody id="migrations"></tbody></table>
  </section>
  <section class="wide">
    <h2>Events</h2>
    <div id="events"></div>
  </section>
</main>
<script>
"use strict";
const palette = ["#1976d2","#e53935","#43a047","#fb8c00","#8e24aa","#00897b","#6d4c41","#3949ab","#c0ca33","#d81b60","#546e7a","#00acc1"];
const colours = new Map();
function colour(address) {
  if (!colours.has(address)) colours.set(address, palette[colours.size % palette.length]);
  return colours.get(address);
}
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}
const full = 4294967296;
function point(position, radius) {
  const angle = position / full * 2 * Math.PI - Math.PI / 2;
  return [radius * Math.cos(angle), radius * Math.sin(angle)];
}
function drawRing(segments) {
  const svg = document.getElementById("ring");
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const base = document.createElementNS(ns, "circle");
  base.setAttribute("r", "130"); base.setAttribute("fill", "none"); base.setAttribute("stroke", "#eceef2"); base.setAttribute("stroke-width", "22");
  svg.append(base);
  for (const [first, last, member] of segments) {
    const [x1, y1] = point(first, 130), [x2, y2] = point(last + 1, 130);
    const large = (last + 1 - first) > full / 2 ? 1 : 0;
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", `M ${x1} ${y1} A 130 130 0 ${large} 1 ${x2} ${y2}`);
    path.setAttribute("fill", "none"); path.setAttribute("stroke", colour(member)); path.setAttribute("stroke-width", "22");
    path.setAttribute("data-member", member);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${member}: ${first}..${last}`;
    path.append(title);
    svg.append(path);
  }
}
function share(segments) {
  const owned = new Map();
  for (const [first, last, member] of segments) owned.set(member, (owned.get(member) || 0) + (last - first + 1));
  return owned;
}
function bytes(n) {
  n = Number(n || 0);
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " GiB";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
  return n + " B";
}
function render(cluster) {
  const snapshot = cluster.snapshot || {}, ring = snapshot.ring || {}, plan = ring.plan || {};
  document.getElementById("epoch").textContent = snapshot.epoch || "0";
  document.getElementById("ring-epoch").textContent = ring.ringEpoch || "0";
  document.getElementById("replicas").textContent = ring.replicas || "-";
  document.getElementById("plan").textContent = (plan.pending || []).length ? `v${plan.version}, ${(plan.pending || []).length} arcs moving` : "settled";
  drawRing(cluster.segments || []);
  const owned = share(cluster.segments || []);
  const members = snapshot.members || [];
  document.getElementById("member-count").textContent = members.length;
  document.getElementById("members").replaceChildren(...members.map(member => {
    const state = (member.state || "MEMBER_STATE_UNKNOWN").replace("MEMBER_STATE_", "").toLowerCase();
    const part = owned.has(member.address) ? (owned.get(member.address) / full * 100).toFixed(1) + "%" : "-";
    return el("tr", {"data-address": member.address, "data-state": state},
      el("td", {}, el("span", {class: "swatch", style: `background:${colour(member.address)}`}), member.address),
      el("td", {class: "state-" + state}, state), el("td", {}, String(member.weight || 1)), el("td", {}, part),
      el("td", {}, member.caughtUp ? "yes" : "no"));
  }));
  const transfers = (plan.transfers || []).filter(transfer => !transfer.done);
  const body = document.getElementById("migrations");
  if (!transfers.length) {
    body.replaceChildren(el("tr", {}, el("td", {colspan: "7", class: "empty"}, "no data moving")));
    return;
  }
  body.replaceChildren(...transfers.map(transfer => {
    const expected = Number(transfer.expectedKeys || 0), moved = Number(transfer.keys || 0);
    const percent = expected > 0 ? Math.min(100, moved / expected * 100) : 0;
    return el("tr", {"data-transfer": transfer.id},
      el("td", {}, "#" + transfer.id), el("td", {}, transfer.from || ""), el("td", {}, transfer.to || ""),
      el("td", {}, String((transfer.arcs || []).length)),
      el("td", {}, el("span", {class: "bar"}, el("div", {style: `width:${percent}%`})), ` ${moved} / ${expected || "?"} keys`),
      el("td", {}, transfer.rate ? bytes(transfer.rate) + "/s" : ""), el("td", {}, transfer.lastError || ""));
  }));
}
let pending = null;
async function refresh() {
  pending = null;
  try {
    const response = await fetch("api/cluster", {cache: "no-store"});
    if (response.ok) render(await response.json());
  } catch (error) { /* the event stream's reconnect brings a refresh */ }
}
function scheduleRefresh() { if (!pending) pending = setTimeout(refresh, 150); }
function describe(event) {
  const details = event.member || event.ring || event.migration || event.lock || event.repair || {};
  if (event.member) return `${details.address || ""} ${details.previousState ? details.previousState + " -> " : ""}${details.state || ""}`;
  if (event.ring) return `members ${(details.members || []).join(", ")}`;
  if (event.migration) return `${details.from || ""} -> ${details.to || ""} ${details.keys || 0}/${details.expectedKeys || 0} keys ${details.reason || ""}`;
  if (event.repair) return `${details.node || ""} ${details.reason || ""}`;
  return "";
}
function addEvent(event) {
  const log = document.getElementById("events");
  const time = new Date(Number(event.timeUnixMicros || 0) / 1000).toISOString().slice(11, 23);
  const line = el("div", {"data-type": event.type, "data-topic": event.topic},
    `${time} `, el("span", {class: "topic"}, `${event.topic}#${event.seq}`), ` ${event.type} ${describe(event)}`);
  log.prepend(line);
  while (log.childElementCount > 300) log.lastElementChild.remove();
}
function connect() {
  const source = new EventSource("events");
  const live = document.getElementById("live");
  // Each (re)connection starts with the recent history: the log starts over.
  source.addEventListener("hello", () => {
    document.getElementById("events").replaceChildren();
    live.className = "on"; live.textContent = "live"; refresh();
  });
  source.addEventListener("ringstore", message => {
    const event = JSON.parse(message.data);
    addEvent(event);
    if (event.topic === "membership" || event.topic === "ring" || event.topic === "migration") scheduleRefresh();
  });
  source.onerror = () => { live.className = "off"; live.textContent = "reconnecting"; };
}
refresh();
connect();
</script>
</body>
</html>
"""#
}
