// Drives llamaws with the official TypeScript client (@llamaindex/workflows-client, the
// client @llamaindex/ui uses), through its public API only.
//
//   node check.mjs http://127.0.0.1:PORT/deployments/hitl [http://127.0.0.1:PORT2/deployments/hello]
//
// The first URL serves the hitl example (`ask`); the optional second one the hello example,
// whose `greet` is run synchronously (hitl has no workflow that finishes without input).
// Prints one JSON line of results and exits 0, or prints the error and exits 1.
import {
  VERSION,
  createClient,
  createConfig,
  getEventsByHandlerId,
  getHandlers,
  getHandlersByHandlerId,
  getWorkflows,
  postEventsByHandlerId,
  postWorkflowsByNameRun,
  postWorkflowsByNameRunNowait,
} from "@llamaindex/workflows-client";

const [baseUrl, helloUrl] = process.argv.slice(2);
if (!baseUrl) {
  console.error("usage: node check.mjs HITL_BASE_URL [HELLO_BASE_URL]");
  process.exit(2);
}

const STEP_TIMEOUT_MS = 20_000;

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// throwOnError: a non-2xx response rejects with the parsed error body.
const client = createClient(createConfig({ baseUrl, throwOnError: true }));
const helloClient = helloUrl
  ? createClient(createConfig({ baseUrl: helloUrl, throwOnError: true }))
  : null;

// A handler's result is the StopEvent envelope ({type, value: {result}}); unwrap it.
const resultOf = (handler) => handler.result?.value?.result ?? handler.result;

async function main() {
  const results = { clientVersion: VERSION };

  const { data: listed } = await getWorkflows({ client });
  results.workflows = [...listed.workflows].sort();

  // Synchronous run (on the hello app, when given).
  if (helloClient) {
    const { data: ran } = await postWorkflowsByNameRun({
      client: helloClient,
      path: { name: "greet" },
      body: { start_event: { name: "Ada" } },
    });
    results.syncRun = { workflow: ran.workflow_name, status: ran.status, result: resultOf(ran) };
  }

  // Start `ask` without waiting.
  const { data: started } = await postWorkflowsByNameRunNowait({
    client,
    path: { name: "ask" },
    body: { start_event: {} },
  });
  const handlerId = started.handler_id;
  results.started = { workflow: started.workflow_name, status: started.status };

  // It is listed among the running handlers of `ask` (array query filters).
  const { data: running } = await getHandlers({
    client,
    query: { workflow_name: ["ask"], status: ["running"] },
  });
  results.listedRunning = running.handlers.some((h) => h.handler_id === handlerId);

  // Stream its events (from the start) until the PromptEvent, an InputRequiredEvent.
  const controller = new AbortController();
  const { stream } = await getEventsByHandlerId({
    client,
    path: { handler_id: handlerId },
    query: { after_sequence: -1 },
    signal: controller.signal,
    sseMaxRetryAttempts: 1,
  });
  const seen = [];
  const prompt = await withTimeout(
    (async () => {
      for await (const event of stream) {
        seen.push(event.type);
        if (event.type === "PromptEvent") return event;
      }
      throw new Error(`stream ended without PromptEvent; saw ${JSON.stringify(seen)}`);
    })(),
    "PromptEvent on the event stream",
  );
  controller.abort();
  results.seenBeforePrompt = seen;
  results.prompt = {
    type: prompt.type,
    inputRequired: (prompt.types ?? []).includes("InputRequiredEvent"),
    prompt: prompt.value?.prompt,
  };

  // Answer it with the client's send-event call.
  const { data: sent } = await postEventsByHandlerId({
    client,
    path: { handler_id: handlerId },
    body: { event: { type: "HumanResponseEvent", value: { response: "blue" } } },
  });
  results.sent = sent;

  // Wait for the handler's result.
  const handler = await withTimeout(
    (async () => {
      for (;;) {
        const { data } = await getHandlersByHandlerId({ client, path: { handler_id: handlerId } });
        if (data.status !== "running") return data;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })(),
    "handler to finish",
  );
  results.final = { status: handler.status, result: resultOf(handler), error: handler.error ?? null };

  // Paged listing: the client passes limit / page_token through; every handler once.
  await postWorkflowsByNameRunNowait({ client, path: { name: "quiz" }, body: { start_event: {} } });
  const paged = [];
  let pageToken;
  for (let page = 0; page < 20; page++) {
    const { data } = await getHandlers({
      client,
      query: pageToken ? { limit: 1, page_token: pageToken } : { limit: 1 },
    });
    paged.push(...data.handlers.map((h) => h.handler_id));
    pageToken = data.next_page_token;
    if (!pageToken) break;
  }
  const { data: whole } = await getHandlers({ client });
  results.paged = { ids: paged, whole: whole.handlers.map((h) => h.handler_id) };

  console.log(JSON.stringify(results));
}

main().then(
  () => process.exit(0),
  (error) => {
    const detail = error instanceof Error ? error.stack : JSON.stringify(error);
    console.error(`ts-client check failed: ${detail}`);
    process.exit(1);
  },
);
