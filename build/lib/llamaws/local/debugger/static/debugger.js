// llamaws workflow debugger: plain JS against the public workflow API (no CDN, no build).
"use strict";

const params = new URLSearchParams(location.search);
const api = (params.get("api") || "").replace(/\/$/, "");
const $ = (id) => document.getElementById(id);
let current = null; // {id, controller}

function say(text, isError) {
  $("message").textContent = text || "";
  $("message").className = isError ? "error" : "";
}

async function call(method, path, body) {
  const response = await fetch(api + path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok && response.status !== 202 && !(data && data.handler_id)) {
    throw new Error((data && data.detail) || `${response.status} ${response.statusText}`);
  }
  return data;
}

function parseJson(id) {
  try { return JSON.parse($(id).value || "{}"); }
  catch (error) { throw new Error(`${id}: invalid JSON: ${error.message}`); }
}

async function loadWorkflows() {
  const data = await call("GET", "/workflows");
  const select = $("workflow");
  select.replaceChildren(...data.workflows.map((name) => new Option(name, name)));
  await loadSchema();
}

async function loadSchema() {
  const name = $("workflow").value;
  if (!name) return;
  try {
    const schema = await call("GET", `/workflows/${encodeURIComponent(name)}/schema`);
    $("schema").textContent = JSON.stringify(schema.start || schema, null, 2);
  } catch (error) {
    $("schema").textContent = String(error.message);
  }
}

async function loadHandlers() {
  const data = await call("GET", "/handlers");
  const items = (data.handlers || []).slice(-20).reverse().map((h) => {
    const li = document.createElement("li");
    li.textContent = `${h.handler_id} ${h.workflow_name} ${h.status}`;
    li.addEventListener("click", () => watch(h.handler_id));
    return li;
  });
  $("handlers").replaceChildren(...items);
}

function showEvent(envelope) {
  const li = document.createElement("li");
  const types = envelope.types || [];
  if (envelope.type === "InputRequiredEvent" || types.includes("InputRequiredEvent")) {
    li.className = "waiting";
  }
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = envelope.type || envelope.qualified_name || "event";
  const value = document.createElement("pre");
  value.textContent = JSON.stringify(envelope.value, null, 2);
  li.append(type, value);
  $("events").append(li);
}

async function showStatus(id) {
  const handler = await call("GET", `/handlers/${id}`);
  if (!current || current.id !== id) return;
  $("status").textContent = handler.status;
  $("status").className = `status ${handler.status}`;
  $("send").disabled = handler.status !== "running";
  if (handler.status !== "running") {
    $("result-box").hidden = false;
    $("result").textContent = handler.error
      ? `error: ${handler.error}`
      : JSON.stringify(handler.result && handler.result.value !== undefined
        ? handler.result.value : handler.result, null, 2);
  }
}

async function watch(id) {
  if (current) current.controller.abort();
  const controller = new AbortController();
  current = { id, controller };
  $("handler-id").textContent = id;
  $("events").replaceChildren();
  $("result-box").hidden = true;
  $("send").disabled = false;
  say("");
  await showStatus(id);
  try {
    const response = await fetch(`${api}/events/${id}?sse=false&after_sequence=-1`,
      { signal: controller.signal });
    if (response.status === 200 && response.body) {
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const lines = buffer.split("\n");
        buffer = lines.pop();
        for (const line of lines) if (line.trim()) showEvent(JSON.parse(line));
      }
    }
  } catch (error) {
    if (error.name === "AbortError") return;
    say(`event stream: ${error.message}`, true);
  }
  if (current && current.id === id) await showStatus(id);
  loadHandlers().catch(() => {});
}

async function start() {
  say("");
  const name = $("workflow").value;
  const startEvent = parseJson("start-input");
  const handler = await call("POST", `/workflows/${encodeURIComponent(name)}/run-nowait`,
    { start_event: startEvent });
  loadHandlers().catch(() => {});
  watch(handler.handler_id);
}

async function send() {
  if (!current) return;
  const event = parseJson("event-input");
  const data = await call("POST", `/events/${current.id}`, { event });
  say(`sent: ${data.status}`);
}

function guard(action) {
  return () => action().catch((error) => say(error.message, true));
}

$("api-label").textContent = api || "(no ?api= given)";
$("workflow").addEventListener("change", guard(loadSchema));
$("start").addEventListener("click", guard(start));
$("send").addEventListener("click", guard(send));
$("refresh-handlers").addEventListener("click", guard(loadHandlers));
guard(async () => { await loadWorkflows(); await loadHandlers(); })();
