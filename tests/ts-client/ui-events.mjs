// Checks that @llamaindex/ui classifies every event of a llamaws run that has a wait token
// the way its stores rely on: the WaitTokenIssued announcement is a plain custom event
// (not a StopEvent, which ends the handler store's stream; not an InputRequiredEvent,
// which ends a chat turn; not a HumanResponseEvent), and the run's own events keep
// their meaning.
//
//   node ui-events.mjs http://127.0.0.1:PORT/deployments/hitl
//
// The events are read with @llamaindex/workflows-client (the transport of @llamaindex/ui)
// and classified with @llamaindex/ui's own WorkflowEvent classes and predicates, loaded
// from its published dist (node_modules/.llamaindex-ui, see .ci/install-ui-deps.sh): its
// workflow module imports only that code, not the package's React dependencies.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  createClient,
  createConfig,
  getEventsByHandlerId,
  postEventsByHandlerId,
  postWorkflowsByNameRunNowait,
} from "@llamaindex/workflows-client";

const [baseUrl] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "node_modules", ".llamaindex-ui", "package", "dist");

// The chunk that @llamaindex/ui/workflows re-exports WorkflowEvent from.
const workflowsIndex = readFileSync(join(dist, "workflows", "index.mjs"), "utf8");
const reexport = workflowsIndex
  .split("\n")
  .find((line) => line.startsWith("export {") && /\bWorkflowEvent\b/.test(line));
const chunk = reexport.match(/from '(.+)'/)[1];
const ui = await import(pathToFileURL(join(dist, "workflows", chunk)).href);
const uiVersion = JSON.parse(readFileSync(join(dist, "..", "package.json"), "utf8")).version;

const client = createClient(createConfig({ baseUrl, throwOnError: true }));

function classify(raw) {
  const event = ui.WorkflowEvent.fromRawEvent(raw);
  return {
    type: raw.type,
    uiClass: event.constructor.name.replace(/^_/, ""),
    stop: ui.isStopEvent(event),
    inputRequired: ui.isInputRequiredEvent(event),
    humanResponse: ui.isHumanResponseEvent(event),
    custom: ui.isCustomEvent(event),
  };
}

async function main() {
  const { data: started } = await postWorkflowsByNameRunNowait({
    client,
    path: { name: "ask" },
    body: { start_event: {} },
  });
  const handlerId = started.handler_id;
  const events = [];
  for (let round = 0; round < 2; round++) {
    const controller = new AbortController();
    const { stream } = await getEventsByHandlerId({
      client,
      path: { handler_id: handlerId },
      query: { after_sequence: -1 },
      signal: controller.signal,
      sseMaxRetryAttempts: 1,
    });
    events.length = 0;
    for await (const raw of stream) {
      events.push(classify(raw));
      if (round === 0 && ui.isInputRequiredEvent(ui.WorkflowEvent.fromRawEvent(raw))) {
        await postEventsByHandlerId({
          client,
          path: { handler_id: handlerId },
          body: { event: { type: "HumanResponseEvent", value: { response: "blue" } } },
        });
        controller.abort();
        break;
      }
      if (ui.isStopEvent(ui.WorkflowEvent.fromRawEvent(raw))) break; // the store's end
    }
  }
  console.log(JSON.stringify({ uiVersion, events }));
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`ui-events check failed: ${error instanceof Error ? error.stack : error}`);
    process.exit(1);
  },
);
