/// The dashboard page: one self-contained HTML document (no external assets) that polls the
/// head's JSON API every two seconds and draws nodes, resource use over time, actors, tasks by
/// state, recent events and user metrics.
enum Dashboard {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Starling dashboard</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 12px 20px; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header span { opacity: .85; }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); }
  section { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: 12px 14px; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eef0f3; font-variant-numeric: tabular-nums; }
  th { font-weight: 600; color: #556; }
  .dead { color: #b00020; } .alive { color: #0a7d32; }
  .bar { background: #e8ebf0; height: 8px; border-radius: 4px; width: 120px; display: inline-block; vertical-align: middle; }
  .bar > i { display: block; height: 8px; border-radius: 4px; background: #3c78d8; }
  svg { display: block; }
  .events li { margin: 2px 0; } .ERROR, .WARNING { color: #b00020; }
  .muted { color: #778; }
</style>
</head>
<body>
<header><h1>Starling</h1><span id="summary">connecting…</span></header>
<main>
  <section class="wide"><h2>Nodes</h2>
    <table id="nodes"><thead><tr><th>node</th><th>state</th><th>address</th><th>CPU</th><th>memory</th><th>object store</th><th>workers</th><th>tasks</th><th>resources</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>CPU over time (%)</h2><div id="cpu-chart"></div></section>
  <section><h2>Memory and object store over time</h2><div id="mem-chart"></div></section>
  <section><h2>Tasks by state</h2><div id="tasks"></div></section>
  <section><h2>Actors</h2><table id="actors"><thead><tr><th>actor</th><th>class</th><th>state</th><th>node</th><th>restarts</th><th>calls</th><th>failed</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Recent events</h2><ul class="events" id="events"></ul></section>
  <section><h2>User metrics</h2><div id="metrics"></div></section>
</main>
<script>
const colors = ["#3c78d8", "#e69138", "#6aa84f", "#cc0000", "#8e7cc3", "#45818e"];
const fmtBytes = b => b >= 2**30 ? (b / 2**30).toFixed(2) + " GiB" : b >= 2**20 ? (b / 2**20).toFixed(1) + " MiB" : b >= 1024 ? (b / 1024).toFixed(1) + " KiB" : b + " B";
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
const bar = (used, total) => `<span class="bar"><i style="width:${total > 0 ? Math.min(100, 100 * used / total) : 0}%"></i></span>`;
function chart(series, max, unit) {
  const w = 440, h = 120;
  if (!series.length) return '<p class="muted">no data yet</p>';
  let svg = `<svg width="${w}" height="${h + 18}" viewBox="0 0 ${w} ${h + 18}"><rect x="0" y="0" width="${w}" height="${h}" fill="#fafbfc" stroke="#dde1e8"/>`;
  series.forEach((s, i) => {
    if (s.points.length < 2) return;
    const pts = s.points.map((v, j) => `${(j / (s.points.length - 1) * (w - 4) + 2).toFixed(1)},${(h - 2 - Math.min(v, max) / (max || 1) * (h - 4)).toFixed(1)}`).join(" ");
    svg += `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="1.5" points="${pts}"/>`;
    svg += `<text x="${4 + i * 110}" y="${h + 14}" font-size="11" fill="${colors[i % colors.length]}">${esc(s.label)}</text>`;
  });
  return svg + `<text x="${w - 4}" y="12" font-size="10" text-anchor="end" fill="#778">${esc(unit)}</text></svg>`;
}
async function get(path) { const r = await fetch(path, {cache: "no-store"}); return r.json(); }
async function refresh() {
  try {
    const [cluster, nodes, actors, tasks, events, metrics] = await Promise.all(
      ["/api/cluster", "/api/nodes?history=60", "/api/actors", "/api/tasks", "/api/events?limit=30", "/api/metrics"].map(get));
    document.getElementById("summary").textContent =
      `${cluster.nodes_alive} node(s) alive, ${cluster.nodes_dead} dead · CPU ${(cluster.resources_total.CPU || 0) - (cluster.resources_available.CPU || 0)} of ${cluster.resources_total.CPU || 0} leased · ${cluster.actors_alive} actor(s) · ${cluster.jobs_running} job(s) · up ${Math.round(cluster.uptime_s)} s`;
    const live = nodes.filter(n => n.state === "alive");
    document.querySelector("#nodes tbody").innerHTML = nodes.map(n => {
      const s = n.stats || {};
      return `<tr class="node-row" data-node="${n.node_id}" data-state="${n.state}"><td>${n.node_id.slice(0, 8)}${n.is_head ? " (head)" : ""}</td><td class="${n.state}">${n.state}</td><td>${esc(n.address)}</td>` +
        `<td>${(s.cpu_percent || 0).toFixed(1)}% ${bar(s.cpu_percent || 0, 100)}</td>` +
        `<td>${fmtBytes(s.memory_used_bytes || 0)} ${bar(s.memory_used_bytes || 0, s.memory_total_bytes || 0)}</td>` +
        `<td>${fmtBytes(s.object_store_used || 0)} of ${fmtBytes(s.object_store_capacity || 0)}</td>` +
        `<td>${s.workers_total || 0} (${s.workers_idle || 0} idle)</td><td>${s.tasks_running || 0} running</td>` +
        `<td>${Object.entries(n.resources_total).map(([k, v]) => `${esc(k)} ${k === "memory" ? fmtBytes(v) : v}`).join(", ")}</td></tr>`;
    }).join("");
    document.getElementById("cpu-chart").innerHTML = chart(live.map(n => ({label: n.node_id.slice(0, 8), points: (n.history || []).map(h => h.cpu_percent)})), 100, "% CPU");
    const memMax = Math.max(1, ...live.map(n => (n.stats || {}).memory_total_bytes || 0));
    document.getElementById("mem-chart").innerHTML = chart(live.flatMap(n => [
      {label: n.node_id.slice(0, 8) + " mem", points: (n.history || []).map(h => h.memory_used_bytes)},
      {label: n.node_id.slice(0, 8) + " store", points: (n.history || []).map(h => h.object_store_used)}]), memMax, fmtBytes(memMax));
    const st = tasks.by_state, leases = tasks.leases;
    document.getElementById("tasks").innerHTML =
      `<p>${st.pending} pending · ${st.running} running · ${st.finished} finished · ${st.failed} failed · ${st.retried} retried</p>` +
      (tasks.by_function.length ? `<table><thead><tr><th>job</th><th>function</th><th>pending</th><th>running</th><th>finished</th><th>failed</th></tr></thead><tbody>` +
        tasks.by_function.slice(0, 50).map(f => `<tr><td>${f.job_id.slice(0, 8)}</td><td>${esc(f.function)}</td><td>${f.pending}</td><td>${f.running}</td><td>${f.finished}</td><td class="${f.failed ? "dead" : ""}">${f.failed}</td></tr>`).join("") +
        `</tbody></table>` : "") +
      `<p class="muted">leased workers: ${leases.running} running · ${leases.queued} lease request(s) queued</p>` +
      leases.by_node.map(t => `<div>${t.node_id.slice(0, 8)} ${bar(t.running, Math.max(1, t.running + t.queued))} ${t.running} running, ${t.queued} queued</div>`).join("");
    document.querySelector("#actors tbody").innerHTML = actors.slice(0, 200).map(a =>
      `<tr><td>${a.actor_id.slice(0, 8)}${a.name ? " " + esc(a.name) : ""}</td><td>${esc(a["class"])}</td><td>${esc(a.state)}</td><td>${a.node_id.slice(0, 8)}</td><td>${a.restarts}</td><td>${a.calls.succeeded + a.calls.failed}</td><td>${a.calls.failed}</td></tr>`).join("");
    document.getElementById("events").innerHTML = events.slice().reverse().map(e =>
      `<li class="${esc(e.severity)}">${new Date(e.time_unix_ms).toLocaleTimeString()} ${esc(e.kind)}: ${esc(e.message)}</li>`).join("") || '<li class="muted">none</li>';
    document.getElementById("metrics").innerHTML = metrics.length ? metrics.map(m => {
      const tags = Object.entries(m.tags).map(([k, v]) => `${esc(k)}=${esc(v)}`).join(", ");
      if (m.kind === "histogram") {
        const most = Math.max(1, ...m.bucket_counts);
        return `<div><b>${esc(m.name)}</b> ${tags} · count ${m.count}, sum ${m.sum.toFixed(3)}<br>` + m.bucket_counts.map((c, i) =>
          `<div>≤ ${i < m.boundaries.length ? m.boundaries[i] : "+Inf"} ${bar(c, most)} ${c}</div>`).join("") + "</div>";
      }
      return `<div><b>${esc(m.name)}</b> ${tags} (${esc(m.kind)}): ${m.value}</div>`;
    }).join("") : '<p class="muted">none reported</p>';
  } catch (error) {
    document.getElementById("summary").textContent = "cannot reach the head: " + error;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""#
}
