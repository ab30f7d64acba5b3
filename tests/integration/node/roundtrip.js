// kafkajs 2.2.4 against a raftmq cluster (BOOTSTRAP env): admin createTopics/fetchTopicMetadata/
// deleteTopics, 10,000 keyed messages with acks=all (-1) into a 3-partition RF-3 topic, gzip
// (kafkajs' only built-in codec) and read-back. kafkajs' Consumer needs consumer groups, which
// raftmq does not serve yet, so records are read with kafkajs' own Fetch implementation (its
// internal cluster/broker objects: the same code its Consumer runs).
const { Kafka, CompressionTypes, logLevel } = require('kafkajs')

const brokers = process.env.BOOTSTRAP.split(',')
const kafka = new Kafka({ clientId: 'raftmq-it-kafkajs', brokers, logLevel: logLevel.WARN })

function keyedMessages(prefix, count, keys = 64) {
  const seq = new Map()
  const out = []
  for (let i = 0; i < count; i++) {
    const key = `${prefix}-key-${i % keys}`
    const n = seq.get(key) || 0
    seq.set(key, n + 1)
    out.push({ key, value: `${key}|${n}|${'x'.repeat(i % 50)}` })
  }
  return out
}

async function readAll(topic, partitions, expected) {
  const createCluster = Object.getOwnPropertySymbols(kafka).find(s =>
    s.toString().includes('createCluster'))
  const cluster = kafka[createCluster]({})
  await cluster.connect()
  await cluster.refreshMetadata([topic])
  const out = []
  const next = new Map()
  for (let p = 0; p < partitions; p++) next.set(p, '0')
  const deadline = Date.now() + 120000
  while (out.length < expected && Date.now() < deadline) {
    const metadata = cluster.findTopicPartitionMetadata(topic)
    for (const { partitionId, leader } of metadata) {
      const broker = await cluster.findBroker({ nodeId: String(leader) })
      const response = await broker.fetch({
        replicaId: -1, isolationLevel: 1, maxWaitTime: 100, minBytes: 1, maxBytes: 10485760,
        topics: [{ topic, partitions: [{ partition: partitionId, fetchOffset: next.get(partitionId),
          maxBytes: 1048576 }] }],
      })
      for (const t of response.responses) {
        for (const p of t.partitions) {
          if (p.errorCode !== 0) throw new Error(`fetch error ${p.errorCode}`)
          for (const m of p.messages) {
            if (BigInt(m.offset) < BigInt(next.get(p.partition))) continue
            if (m.isControlRecord) {  // Raft's own entries (no-ops), skipped as kafkajs' Consumer does
              next.set(p.partition, (BigInt(m.offset) + 1n).toString())
              continue
            }
            out.push([m.key.toString(), m.value.toString(), p.partition, Number(m.offset)])
            next.set(p.partition, (BigInt(m.offset) + 1n).toString())
          }
        }
      }
    }
  }
  await cluster.disconnect()
  return out
}

async function main() {
  const admin = kafka.admin()
  await admin.connect()
  const topics = ['kj-events', 'kj-gzip']
  await admin.createTopics({
    waitForLeaders: true,
    topics: topics.map(topic => ({ topic, numPartitions: 3, replicationFactor: 3 })),
  })
  const md = await admin.fetchTopicMetadata({ topics })
  for (const t of md.topics) {
    if (t.partitions.length !== 3) throw new Error(`${t.name}: ${t.partitions.length} partitions`)
  }
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const result = {}
  for (const [topic, compression, count] of [['kj-events', CompressionTypes.None, 10000],
    ['kj-gzip', CompressionTypes.GZIP, 2000]]) {
    const messages = keyedMessages(topic, count)
    for (let i = 0; i < messages.length; i += 500) {
      await producer.send({ topic, acks: -1, compression, messages: messages.slice(i, i + 500) })
    }
    result[topic] = { produced: messages.map(m => [m.key, m.value]),
      consumed: await readAll(topic, 3, messages.length) }
  }
  await producer.disconnect()
  await admin.deleteTopics({ topics: ['kj-gzip'] })
  // DeleteTopics answers once every live broker applied the deletion (docs/cluster.md "Admin
  // answers wait for the live brokers"): whichever broker kafkajs asks no longer lists it.
  const remaining = await admin.listTopics()
  if (remaining.includes('kj-gzip')) throw new Error('kj-gzip still listed right after delete')
  await admin.disconnect()
  process.stdout.write(JSON.stringify(result))
}

main().catch(e => { console.error(e); process.exit(1) })
