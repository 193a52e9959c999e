// One event stream of the progress app's `asks` run, read with the official TypeScript
// client (@llamaindex/workflows-client, the client @llamaindex/ui uses): the question is
// published after the stream opened, is answered, and the StopEvent arrives on the same
// stream (no retry allowed: an error would be reported, not hidden by a reconnect).
//
//   node live.mjs http://127.0.0.1:PORT/deployments/progress
//
// Prints one JSON line and exits 0, or prints the error and exits 1.
import {
  createClient,
  createConfig,
  getEventsByHandlerId,
  postEventsByHandlerId,
  postWorkflowsByNameRunNowait,
} from "@llamaindex/workflows-client";

const [baseUrl] = process.argv.slice(2);
if (!baseUrl) {
  console.error("usage: node live.mjs PROGRESS_BASE_URL");
  process.exit(2);
}
const client = createClient(createConfig({ baseUrl, throwOnError: true }));

async function main() {
  const { data: started } = await postWorkflowsByNameRunNowait({
    client,
    path: { name: "asks" },
    body: { start_event: { delay: 1.5 } },
  });
  const handlerId = started.handler_id;
  const report = { openedAt: Date.now() / 1000, seen: [], errors: [], question: null, final: null };
  const { stream } = await getEventsByHandlerId({
    client,
    path: { handler_id: handlerId },
    query: { after_sequence: -1 },
    sseMaxRetryAttempts: 0,
    onSseError: (error) => report.errors.push(String(error)),
  });
  for await (const event of stream) {
    report.seen.push(event.type);
    if (event.type === "Question") {
      report.question = { prompt: event.value.prompt, publishedAt: event.value.published_at };
      await postEventsByHandlerId({
        client,
        path: { handler_id: handlerId },
        body: { event: { type: "HumanResponseEvent", value: { response: "blue" } } },
      });
    }
    if (event.type === "StopEvent") {
      report.final = event.value;
      break;
    }
  }
  console.log(JSON.stringify(report));
}

const timer = setTimeout(() => {
  console.error("live.mjs: timed out");
  process.exit(1);
}, 45_000);
main().then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (error) => {
    console.error(`live.mjs failed: ${error instanceof Error ? error.stack : JSON.stringify(error)}`);
    process.exit(1);
  },
);
