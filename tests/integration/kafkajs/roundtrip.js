// kafkajs 2.2.4 against a ddialab events broker: a producer, then a consumer group that reads
// everything back and commits, then the same group again, which must resume after the commit.
// usage: node roundtrip.js BROKER TOPIC GROUP
// Prints one JSON object: what was produced and what each consumer run received.
'use strict';
const { Kafka, logLevel, CompressionTypes } = require('kafkajs');

const [broker, topic, group] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'ddialab-test', brokers: [broker], logLevel: logLevel.WARN,
                          retry: { retries: 3 } });

// Rejects after ms unless cancelled; the timer must not keep node running once the work is done.
function deadline(ms, what) {
  let timer;
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what()}`)), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

// Consumes with group until `want` messages arrived; returns them as "partition offset key=value h".
async function consume(want) {
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500,
                                    maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const h = message.headers && message.headers.origin ? message.headers.origin.toString() : '';
      got.push(`${partition} ${message.offset} ${message.key}=${message.value} ${h}`);
      if (got.length >= want) done();
    },
  });
  const limit = deadline(30000, () => `${want} messages (got ${got.length})`);
  try {
    await Promise.race([finished, limit.promise]);
  } finally {
    limit.cancel();
  }
  await consumer.disconnect(); // commits what was consumed, then leaves the group
  return got;
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.disconnect();

  const producer = kafka.producer();
  await producer.connect();
  const first = [];
  for (let i = 0; i < 30; i++)
    first.push({ key: `k${i}`, value: `v${i}`, headers: { origin: 'kafkajs' } });
  await producer.send({ topic, acks: -1, messages: first.slice(0, 15) });
  await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP,
                        messages: first.slice(15) });
  const run1 = await consume(first.length);
  await producer.send({ topic, acks: -1, messages: [{ key: 'late', value: 'after-commit' }] });
  await producer.disconnect();
  const run2 = await consume(1);
  console.log(JSON.stringify({ produced: first.length, run1, run2 }));
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
