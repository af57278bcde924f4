import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// Served by sentinel-api at /dashboard/ (SENTINEL_DASHBOARD_DIR, default dashboard/dist). The
// client is compiled from its TypeScript source, so the dashboard always matches the committed spec.
export default defineConfig({
  base: "/dashboard/",
  resolve: {
    alias: {
      "@sentinel/client": fileURLToPath(new URL("../openapi/client/src/index.ts", import.meta.url)),
    },
  },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
});
