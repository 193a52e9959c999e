import { createRoot } from "react-dom/client";
import { ApiProvider } from "@llamaindex/ui";
import { createClient, createConfig } from "@llamaindex/workflows-client";
import { App } from "./App.jsx";

// The workflow API of this deployment: the UI lives at /deployments/<name>/ui/, the API
// at /deployments/<name>/ (BASE_URL comes from vite.config.js `base`), locally and
// deployed (same origin behind CloudFront).
const baseUrl = new URL(import.meta.env.BASE_URL.replace(/ui\/$/, ""), window.location.href)
  .href.replace(/\/$/, "");
const workflowsClient = createClient(createConfig({ baseUrl }));

createRoot(document.getElementById("root")).render(
  <ApiProvider clients={{ workflowsClient }}>
    <App />
  </ApiProvider>,
);
