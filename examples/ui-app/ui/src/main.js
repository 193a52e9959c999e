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
  // The run's events (SSE), from its first. A stream may end before the run does (a
  // deployed function bounds each one): resume after the last id seen, as the official
  // clients do, until the StopEvent or a 204 (nothing more to come).
  let last = -1;
  for (let failures = 0; failures < 5; ) {
    let response;
    try {
      response = await fetch(`${api}events/${id}?after_sequence=${last}`);
    } catch {
      failures += 1;
      await new Promise((resolve) => setTimeout(resolve, 500));
      continue;
    }
    if (response.status === 204) return;
    if (!response.ok) throw new Error(`events: ${response.status} ${response.statusText}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let pendingId = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const lines = buffer.split("\n");
        buffer = lines.pop();
        for (const line of lines) {
          if (line.startsWith("id:")) pendingId = Number(line.slice(3).trim());
          else if (line.startsWith("data:")) {
            const event = JSON.parse(line.slice(5).trim());
            if (pendingId !== null) last = pendingId;
            onEvent(event);
            if (event.type === "StopEvent") return;
          }
        }
      }
      failures = 0;
    } catch {
      failures += 1; // the connection was cut: resume from the last id
    }
  }
  throw new Error("the event stream keeps failing");
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
