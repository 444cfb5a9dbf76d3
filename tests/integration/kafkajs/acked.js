// Produces numbered records one request at a time (acks=-1) until the broker goes away, printing
// each acknowledged number as soon as its answer arrives: the test kills the broker mid-stream
// and then checks that every number printed here is in the log.
// usage: node acked.js BROKER TOPIC
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const [broker, topic] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'ddialab-acked', brokers: [broker], logLevel: logLevel.NOTHING,
                          retry: { retries: 0 } });

async function main() {
  const producer = kafka.producer({ retry: { retries: 0 } });
  await producer.connect();
  for (let i = 0; ; i++) {
    const batch = [];
    for (let k = 0; k < 10; k++) batch.push({ value: String(i * 10 + k) });
    try {
      await producer.send({ topic, acks: -1, messages: batch });
    } catch (e) {
      process.exit(0); // the broker is gone: what was printed is what was acknowledged
    }
    process.stdout.write(batch.map((m) => m.value).join('\n') + '\n');
  }
}

main().catch(() => process.exit(0));
