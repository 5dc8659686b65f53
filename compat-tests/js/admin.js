// kafkajs's admin client, one operation per call.
//   {"bootstrap", "op": "cluster", "topics": [...]}
//   {"bootstrap", "op": "createTopic", "topic", "partitions", "configs": {name: value}}
//   {"bootstrap", "op": "deleteTopic", "topic"}
//   {"bootstrap", "op": "offsetsForTimes", "topic", "timestamp"}
//   {"bootstrap", "op": "describeConfigs" | "alterConfigs", "topic", "configs"}
//   {"bootstrap", "op": "listGroups"} | {"bootstrap", "op": "describeGroup", "group"}
//   {"op": "codecs"}: the compression codecs this installation can use (no broker needed)
'use strict'
const { ConfigResourceTypes } = require('kafkajs')
const { kafka, codecs, main } = require('./common')

const ops = {
  async cluster (admin, arg) {
    const cluster = await admin.describeCluster()
    const md = await admin.fetchTopicMetadata({ topics: arg.topics })
    return {
      brokers: cluster.brokers.map(b => [b.host, b.port]),
      topics: Object.fromEntries(md.topics.map(t => [t.name, t.partitions.length])),
    }
  },
  async createTopic (admin, arg) {
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{
        topic: arg.topic,
        numPartitions: arg.partitions,
        replicationFactor: 1,
        configEntries: Object.entries(arg.configs || {}).map(([name, value]) => ({ name, value })),
      }],
    })
    if (!created) throw Object.assign(new Error(`topic ${arg.topic} already exists`), { type: 'TOPIC_ALREADY_EXISTS' })
    return created
  },
  async deleteTopic (admin, arg) {
    await admin.deleteTopics({ topics: [arg.topic], timeout: 10000 })
  },
  async offsetsForTimes (admin, arg) {
    // kafkajs answers the high watermark where no record is at or after the timestamp.
    const low = await admin.fetchTopicOffsetsByTimestamp(arg.topic, arg.timestamp)
    const high = await admin.fetchTopicOffsets(arg.topic)
    return low.map(({ partition, offset }) => ({
      partition,
      offset: Number(offset),
      high: Number(high.find(h => h.partition === partition).high),
    }))
  },
  async describeConfigs (admin, arg) {
    const res = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: arg.topic }],
    })
    const out = {}
    for (const r of res.resources) {
      if (r.errorCode) throw Object.assign(new Error(r.errorMessage || `error ${r.errorCode}`), { code: r.errorCode })
      for (const e of r.configEntries) out[e.configName] = e.configValue
    }
    return out
  },
  async alterConfigs (admin, arg) {
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{
        type: ConfigResourceTypes.TOPIC,
        name: arg.topic,
        configEntries: Object.entries(arg.configs).map(([name, value]) => ({ name, value })),
      }],
    })
  },
  async listGroups (admin) {
    return (await admin.listGroups()).groups.map(g => g.groupId)
  },
  async describeGroup (admin, arg) {
    const { groups } = await admin.describeGroups([arg.group])
    return { state: groups[0].state, members: groups[0].members.length }
  },
}

main(async arg => {
  if (arg.op === 'codecs') return codecs
  const admin = kafka(arg).admin()
  await admin.connect()
  try {
    return await ops[arg.op](admin, arg)
  } finally {
    await admin.disconnect()
  }
})
