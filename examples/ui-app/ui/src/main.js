import "./style.css";

// The workflow API of this deployment: the UI lives at /deployments/<name>/ui/,
// the API at /deployments/<name>/ (BASE_URL comes from vite.config.js `base`).
const api = import.meta.env.BASE_URL.replace(/ui\/$/, "");
const $ = (id) => document.getElementById(id);
let handlerId = null;

async function post(path, body) {
  const response = await fetch(api + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.detail || response.statusText);
  return data;
}

function show(text) {
  const li = document.createElement("li");
  li.textContent = text;
  $("events").append(li);
}

async function follow(id) {
  // NDJSON event stream of the run, from its first event.
  const response = await fetch(`${api}events/${id}?sse=false&after_sequence=-1`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const line of lines) if (line.trim()) onEvent(JSON.parse(line));
  }
}

function onEvent(event) {
  const value = event.value || {};
  if (event.type === "ProgressEvent") {
    show(value.message);
  } else if ((event.types || []).includes("InputRequiredEvent")) {
    show(`question: ${value.question}`);
    $("prompt").textContent = value.question;
    $("prompt-form").hidden = false;
    $("answer").focus();
  } else if (event.type === "StopEvent") {
    $("prompt-form").hidden = true;
    $("result").textContent = value.result;
  } else {
    show(event.type);
  }
}

$("start-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("events").replaceChildren();
  $("result").textContent = "";
  try {
    const run = await post("workflows/greet/run-nowait", {
      start_event: { topic: $("topic").value },
    });
    handlerId = run.handler_id;
    $("run").textContent = `run ${handlerId}`;
    await follow(handlerId);
  } catch (error) {
    $("result").textContent = `error: ${error.message}`;
    $("result").className = "error";
  }
});

$("prompt-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("prompt-form").hidden = true;
  try {
    await post(`events/${handlerId}`, {
      event: { type: "HumanResponseEvent", value: { response: $("answer").value } },
    });
  } catch (error) {
    $("result").textContent = `error: ${error.message}`;
    $("result").className = "error";
  }
});
