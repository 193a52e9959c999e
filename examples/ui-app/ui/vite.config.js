import { defineConfig } from "vite";

// The llamactl / llamaws contract: the UI is served under
// LLAMA_DEPLOY_DEPLOYMENT_BASE_PATH (/deployments/<name>/ui) and the dev server
// listens on PORT; the app server (port 4501) proxies it, websockets included.
const basePath = process.env.LLAMA_DEPLOY_DEPLOYMENT_BASE_PATH || "/deployments/ui-app/ui";

export default defineConfig({
  base: `${basePath.replace(/\/$/, "")}/`,
  server: {
    host: "127.0.0.1",
    port: Number(process.env.PORT || 4502),
    strictPort: true,
  },
});
