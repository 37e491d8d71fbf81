// node worker.js PORT worker|multi
// Performs the trivial "noop" job from the "bench" queue until stopped with SIGTERM.
// "worker" is one node-resque Worker; "multi" is a MultiWorker with a fixed pool of ten workers
// that is filled quickly (checkTimeout 100 ms), its best case for draining a full queue.
"use strict";

const { Worker, MultiWorker } = require("node-resque");

const jobs = { noop: { perform: () => null } };

async function main() {
  const connection = { host: "127.0.0.1", port: Number(process.argv[2]), database: 0, namespace: "resque" };
  const mode = process.argv[3];
  let worker;
  if (mode === "multi") {
    worker = new MultiWorker(
      { connection, queues: ["bench"], minTaskProcessors: 10, maxTaskProcessors: 10, checkTimeout: 100, timeout: 100 },
      jobs,
    );
  } else {
    worker = new Worker({ connection, queues: ["bench"], timeout: 100 }, jobs);
    await worker.connect();
  }
  worker.on("error", (error) => process.stderr.write(`worker error: ${error}\n`));
  await worker.start();
  const stop = async () => {
    await worker.end();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
