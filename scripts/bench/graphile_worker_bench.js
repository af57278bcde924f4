// graphile-worker measured the same way as clients/python/bench/worker_api_bench.py, side by side
// (scripts/bench-worker-api.sh runs both): JOBS no-op jobs queued, then burned down by one worker
// (graphile-worker's defaults: concurrency 24 unless CONCURRENCY says otherwise), jobs per second
// from its start to the last success; then SAMPLES jobs added one at a time to an idle worker,
// the time from addJob's return (committed) to the task starting, p50 and p99.
const { run, makeWorkerUtils, Logger } = require("graphile-worker");

// Its info lines would share stdout with the result.
const logger = new Logger(() => () => {});

const connectionString = process.env.GRAPHILE_DATABASE_URL;
const JOBS = Number(process.env.JOBS || 5000);
const SAMPLES = Number(process.env.SAMPLES || 300);
const CONCURRENCY = Number(process.env.GRAPHILE_CONCURRENCY || 24);

async function main() {
  const utils = await makeWorkerUtils({ connectionString, logger });
  await utils.migrate();
  const specs = [];
  for (let i = 0; i < JOBS; i++) specs.push({ identifier: "noop", payload: { i } });
  await utils.addJobs(specs);

  let done = 0;
  let finished;
  const allDone = new Promise((resolve) => (finished = resolve));
  const started = performance.now();
  const runner = await run({
    connectionString,
    concurrency: CONCURRENCY,
    maxPoolSize: CONCURRENCY + 2,
    noHandleSignals: true,
    logger,
    taskList: { noop: async () => { if (++done === JOBS) finished(); } },
  });
  await allDone;
  const rate = JOBS / ((performance.now() - started) / 1000);
  await runner.stop();

  let arrived;
  const latencyRunner = await run({
    connectionString,
    concurrency: 1,
    noHandleSignals: true,
    logger,
    taskList: { lat: async () => arrived(performance.now()) },
  });
  await new Promise((r) => setTimeout(r, 1000));
  const samples = [];
  for (let i = 0; i < SAMPLES; i++) {
    const reached = new Promise((resolve) => (arrived = resolve));
    await utils.addJob("lat", { i });
    const committed = performance.now();
    samples.push((await reached) - committed);
    await new Promise((r) => setTimeout(r, 20));
  }
  await latencyRunner.stop();
  await utils.release();
  samples.sort((a, b) => a - b);
  const p50 = samples[Math.floor(samples.length / 2)];
  const p99 = samples[Math.min(samples.length - 1, Math.floor(samples.length * 0.99))];
  console.log(JSON.stringify({ rate, p50, p99 }));
}

main().catch((error) => { console.error(error); process.exit(1); });
