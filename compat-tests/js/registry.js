// @kafkajs/confluent-schema-registry against a Schema Registry, with kafkajs producing and consuming:
// one Avro, one JSON Schema and one Protobuf value registered, encoded, produced, consumed and decoded;
// then an incompatible Avro evolution, which the registry must refuse.
//   {"bootstrap", "registry": "http://host:port", "topic"}
//   -> {"ids": {AVRO, JSON, PROTOBUF}, "decoded": [...], "refused": {"status", "message"}, "evolved": id}
'use strict'
const { SchemaRegistry, SchemaType } = require('@kafkajs/confluent-schema-registry')
const { kafka, main } = require('./common')

const AVRO = { type: 'record', name: 'Reading', namespace: 'kb.compat',
  fields: [{ name: 'sensor', type: 'string' }, { name: 'value', type: 'double' }] }
const JSONS = { type: 'object', properties: { sensor: { type: 'string' }, value: { type: 'number' } },
  required: ['sensor'] }
const PROTO = 'syntax = "proto3";\npackage kb.compat;\nmessage Reading {\n  string sensor = 1;\n  double value = 2;\n}\n'

main(async arg => {
  const registry = new SchemaRegistry({ host: arg.registry })
  const schemas = [
    [SchemaType.AVRO, JSON.stringify(AVRO), { sensor: 'a', value: 1.5 }],
    [SchemaType.JSON, JSON.stringify(JSONS), { sensor: 'j', value: 2.5 }],
    [SchemaType.PROTOBUF, PROTO, { sensor: 'p', value: 3.5 }],
  ]
  const ids = {}
  const messages = []
  for (const [type, schema, payload] of schemas) {
    const { id } = await registry.register({ type, schema }, { subject: `${arg.topic}-${type}-value` })
    ids[type] = id
    messages.push({ value: await registry.encode(id, payload) })
  }
  const k = kafka(arg)
  const producer = k.producer()
  await producer.connect()
  await producer.send({ topic: arg.topic, messages, acks: -1 })
  await producer.disconnect()

  const consumer = k.consumer({ groupId: `g-${arg.topic}` })
  await consumer.connect()
  await consumer.subscribe({ topic: arg.topic, fromBeginning: true })
  const decoded = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no records within 20 s')), 20000)
    consumer.run({
      eachMessage: async ({ message }) => {
        decoded.push(await registry.decode(message.value))
        if (decoded.length === messages.length) { clearTimeout(timer); resolve() }
      },
    }).catch(reject)
  })
  await consumer.disconnect()

  // A required field without a default: not BACKWARD compatible.
  const bad = { ...AVRO, fields: [...AVRO.fields, { name: 'unit', type: 'string' }] }
  let refused = null
  try {
    await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(bad) },
      { subject: `${arg.topic}-AVRO-value` })
  } catch (e) {
    refused = { status: e.status || null, message: e.message }
  }
  const good = { ...AVRO, fields: [...AVRO.fields, { name: 'unit', type: 'string', default: 'C' }] }
  const evolved = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(good) },
    { subject: `${arg.topic}-AVRO-value` })
  return { ids, decoded, refused, evolved: evolved.id }
})
