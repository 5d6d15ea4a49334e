// Vite builds the dashboard to dist/ (served by the local cloud at / and, deployed, from the
// dashboard bucket through CloudFront). Preact keeps the framework's share of the bundle small;
// ECharts is imported module by module in src/charts.ts.
import { defineConfig } from "vitest/config";

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    target: "es2020",
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 900,
    // bench.html: the chart render benchmark the end-to-end test opens.
    rollupOptions: { input: { main: "index.html", bench: "bench.html" } },
  },
  test: { environment: "node", include: ["test/**/*.test.ts"] },
});
