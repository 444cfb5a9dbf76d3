// kafkajs 2.2.4 reading a compacted topic from the beginning: offsets have gaps, and a thinned
// batch still spans the offsets of the records compaction removed from its end.
// usage: node compacted.js BROKER TOPIC WANT
// Prints one JSON array of "offset key=value", once WANT messages arrived.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const [broker, topic, want] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'ddialab-compacted-test', brokers: [broker],
                          logLevel: logLevel.WARN, retry: { retries: 3 } });

async function main() {
  const consumer = kafka.consumer({ groupId: 'compacted-reader', maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  await consumer.run({
    eachMessage: async ({ message }) => {
      got.push(`${message.offset} ${message.key}=${message.value}`);
      if (got.length >= Number(want)) done();
    },
  });
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out with ${JSON.stringify(got)}`)), 30000);
  });
  try {
    await Promise.race([finished, limit]);
  } finally {
    clearTimeout(timer);
  }
  await consumer.disconnect();
  console.log(JSON.stringify(got));
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
