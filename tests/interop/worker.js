// node worker.js PORT NAMESPACE QUEUES COUNT [DEADLINE_MS]
// Runs a node-resque Worker on the comma-separated QUEUES until COUNT jobs have finished, then
// prints the jobs as [{"outcome","queue","class","args"}] in the order they finished.
// Jobs "echo", "log" and "someJob" return their arguments; "boom" throws Error("kaboom"); "hang"
// never finishes.
"use strict";

const { Worker } = require("node-resque");
const { connectionFromArgs, reply, fail } = require("./connection");

const echo = { perform: (...args) => args };
const jobs = {
  echo,
  log: echo,
  someJob: echo,
  hang: { perform: () => new Promise(() => {}) },
  boom: {
    perform: () => {
      throw new Error("kaboom");
    },
  },
};

async function main() {
  const connection = connectionFromArgs(process.argv);
  const queues = process.argv[4].split(",");
  const count = Number(process.argv[5]);
  const deadlineMs = Number(process.argv[6] || 20000);
  const done = [];
  const worker = new Worker({ connection, queues, timeout: 100 }, jobs);
  let finish;
  const finished = new Promise((resolve) => {
    finish = resolve;
  });
  const note = (outcome) => (queue, job) => {
    done.push({ outcome, queue, class: job.class, args: job.args });
    if (done.length >= count) finish();
  };
  worker.on("success", note("success"));
  worker.on("failure", note("failure"));
  worker.on("error", (error) => process.stderr.write(`worker error: ${error}\n`));
  const timer = setTimeout(() => fail(new Error(`only ${done.length} of ${count} jobs within ${deadlineMs} ms`)), deadlineMs);
  await worker.connect();
  await worker.start();
  await finished;
  clearTimeout(timer);
  await worker.end();
  reply({ name: worker.name, jobs: done });
}

main().catch(fail);
