// Run a CloudFront Function (viewer-request) for tests/cloudfront_front.py.
// Usage: node viewer_request.mjs <function.js>; reads one request per line on stdin
// ({method, uri, querystring, headers}), writes what the function returns (the
// request, maybe rewritten, or a response with statusCode) as one JSON line.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import vm from "node:vm";

const sandbox = {};
vm.runInNewContext(readFileSync(process.argv[2], "utf8"), sandbox);

for await (const line of createInterface({ input: process.stdin })) {
  const event = {
    version: "1.0",
    context: { eventType: "viewer-request" },
    viewer: { ip: "127.0.0.1" },
    request: JSON.parse(line),
  };
  let answer;
  try {
    answer = sandbox.handler(event);
  } catch (error) {
    answer = { statusCode: 503, statusDescription: `function error: ${error}` };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
