import { defineConfig } from "vitest/config";

// The tests talk to a real gateway and worker (scripts/web.sh starts them): generous time limits,
// one file at a time.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
