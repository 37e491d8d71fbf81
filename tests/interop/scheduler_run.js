// node scheduler_run.js PORT NAMESPACE NAME TIMEOUT_MS
// Runs a node-resque Scheduler named NAME that polls every TIMEOUT_MS, printing one JSON line per
// event as it happens: {"event":"started"}, {"event":"leader"}, {"event":"poll","leader":bool},
// {"event":"transferredJob","timestamp":ts,"job":{...}} and finally {"event":"ended"}.
// It ends (releasing the leader lock, as node-resque does) when its stdin closes.
"use strict";

const { Scheduler } = require("node-resque");
const { connectionFromArgs, reply, fail } = require("./connection");

async function main() {
  const connection = connectionFromArgs(process.argv);
  const name = process.argv[4];
  const timeout = Number(process.argv[5] || 100);
  const scheduler = new Scheduler({ connection, name, timeout, stuckWorkerTimeout: false });
  scheduler.on("error", (error) => process.stderr.write(`scheduler error: ${error}\n`));
  scheduler.on("leader", () => reply({ event: "leader" }));
  scheduler.on("poll", () => reply({ event: "poll", leader: scheduler.leader }));
  scheduler.on("transferredJob", (timestamp, job) => reply({ event: "transferredJob", timestamp, job }));
  await scheduler.connect();
  await scheduler.start();
  reply({ event: "started" });
  process.stdin.resume();
  process.stdin.on("end", async () => {
    await scheduler.end();
    reply({ event: "ended" });
    process.exit(0);
  });
}

main().catch(fail);
