// kafkajs 2.2.4's admin client against a ddialab events broker: CreateTopics (new, existing,
// invalid, with configs), metadata of what it made, ListGroups after a consumer group ran,
// DeleteTopics.
// usage: node admin.js BROKER
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const kafka = new Kafka({ clientId: 'ddialab-admin-test', brokers: [process.argv[2]],
                          logLevel: logLevel.NOTHING, retry: { retries: 0 } });

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const result = {};
  result.created = await admin.createTopics({ topics: [{ topic: 'made', numPartitions: 5 }] });
  result.again = await admin.createTopics({ topics: [{ topic: 'made', numPartitions: 5 }] });
  try {
    await admin.createTopics({ topics: [{ topic: 'bad name!', numPartitions: 1 }] });
    result.invalid = 'accepted';
  } catch (e) {
    result.invalid = e.type || (e.errors && e.errors[0] && e.errors[0].type) || String(e);
  }
  try {
    await admin.createTopics({ topics: [{ topic: 'replicated', numPartitions: 1,
                                          replicationFactor: 3 }] });
    result.replicated = 'accepted';
  } catch (e) {
    result.replicated = (e.errors && e.errors[0] && e.errors[0].type) || e.type || String(e);
  }
  result.compacted = await admin.createTopics({
    topics: [{ topic: 'table', numPartitions: 1,
               configEntries: [{ name: 'cleanup.policy', value: 'compact' },
                               { name: 'delete.retention.ms', value: '1000' }] }] });
  try {
    await admin.createTopics({ topics: [{ topic: 'odd', numPartitions: 1,
                                          configEntries: [{ name: 'flush.ms', value: '1' }] }] });
    result.badConfig = 'accepted';
  } catch (e) {
    result.badConfig = (e.errors && e.errors[0] && e.errors[0].type) || e.type || String(e);
  }
  const meta = await admin.fetchTopicMetadata({ topics: ['made'] });
  result.partitions = meta.topics[0].partitions.map((p) => p.partitionId).sort((a, b) => a - b);
  result.topics = (await admin.listTopics()).sort();

  const consumer = kafka.consumer({ groupId: 'admin-test-group' });
  await consumer.connect();
  await consumer.subscribe({ topic: 'made', fromBeginning: true });
  await consumer.run({ eachMessage: async () => {} });
  // The group exists once the consumer joined; ListGroups shows it.
  for (let i = 0; i < 100; i++) {
    const { groups } = await admin.listGroups();
    result.groups = groups.map((g) => `${g.groupId}/${g.protocolType}`);
    if (result.groups.length > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // DescribeGroups once the group is Stable (the consumer got its assignment).
  for (let i = 0; i < 100; i++) {
    const { groups } = await admin.describeGroups(['admin-test-group', 'no-such-group']);
    const [g, missing] = groups;
    result.described = { state: g.state, protocol: g.protocol, protocolType: g.protocolType,
                         members: g.members.map((m) => ({ clientId: m.clientId,
                                                          clientHost: m.clientHost,
                                                          assigned: m.memberAssignment.length })),
                         missing: missing.state };
    if (g.state === 'Stable' && g.members.length === 1 && g.members[0].memberAssignment.length)
      break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await consumer.disconnect();
  await admin.deleteTopics({ topics: ['table'] });
  result.afterDelete = (await admin.listTopics()).sort();
  await admin.disconnect();
  console.log(JSON.stringify(result));
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
