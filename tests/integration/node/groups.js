// kafkajs 2.2.4 consumer group against raftmq (BOOTSTRAP, TOPIC, GROUP, EXPECTED env): joins the
// group, consumes the topic from the beginning until EXPECTED messages arrived, commits the
// offsets explicitly and leaves. Prints {"count": n, "unique": u, "partitions": [...]}.
const { Kafka, logLevel } = require('kafkajs')

const brokers = process.env.BOOTSTRAP.split(',')
const topic = process.env.TOPIC
const groupId = process.env.GROUP
const expected = Number(process.env.EXPECTED)
const kafka = new Kafka({ clientId: 'raftmq-it-kafkajs-group', brokers, logLevel: logLevel.WARN })

async function main() {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const seen = new Set()
  const next = new Map()
  let count = 0
  let finish
  const finished = new Promise(resolve => { finish = resolve })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      count++
      seen.add(`${partition}:${message.offset}`)
      next.set(partition, (BigInt(message.offset) + 1n).toString())
      if (seen.size >= expected) finish()
    },
  })
  const timer = setTimeout(() => finish(), 90000)
  await finished
  clearTimeout(timer)
  await consumer.commitOffsets([...next].map(([partition, offset]) => ({ topic, partition, offset })))
  await consumer.disconnect()
  process.stdout.write(JSON.stringify({ count, unique: seen.size, partitions: [...next.keys()] }))
}

main().catch(e => { console.error(e); process.exit(1) })
