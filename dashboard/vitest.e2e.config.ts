import { defineConfig } from "vitest/config";

// Browser tests: Debian's Chromium driven by playwright-core against a real gateway, worker and
// Postgres (scripts/web.sh starts them). One browser, tests in order.
export default defineConfig({
  test: {
    include: ["e2e/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    sequence: { concurrent: false },
  },
});
