package kcompat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FeatureUpdate;
import org.apache.kafka.clients.admin.UpdateFeaturesOptions;
import org.apache.kafka.clients.admin.AlterClientQuotasOptions;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListShareGroupOffsetsSpec;
import org.apache.kafka.clients.admin.SharePartitionOffsetInfo;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.admin.ShareMemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Produced;

/**
 * The Java client driver of compat-tests: Apache Kafka's own producer, consumer, admin client and Kafka
 * Streams.
 *
 * <pre>
 *   java -cp ... kcompat.Driver   (one JSON argument on stdin: {"op": "produce", "bootstrap": "host:port", ...})
 *   -> {"ok": true, "result": ...} or {"ok": false, "error": {"kind": "MESSAGE_TOO_LARGE", "message": "..."}}
 *   java -cp ... kcompat.Driver --serve   (long-lived: one such argument per line of stdin, one answer per
 *                                          line of stdout, until stdin closes)
 * </pre>
 *
 * An operation's clients are closed before its answer is written, so nothing of one operation outlives it
 * in a long-lived driver.
 *
 * Keys, values and header values travel base64-encoded (null stays null), as with the Go and Node.js
 * drivers. Clients are configured as their users configure them: acks=all, the client's defaults
 * otherwise (idempotence is on by default since Kafka 3.0) unless the operation asks for something else.
 */
public final class Driver {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Driver() {}

    public static void main(String[] args) throws Exception {
        PrintStream out = System.out;
        System.setOut(System.err); // nothing but the answers goes to stdout
        if (args.length > 0 && args[0].equals("--serve")) {
            serve(out);
            System.exit(0); // stdin closed: the session is over
        }
        JsonNode arg = JSON.readTree(args.length > 0 ? args[0] : new String(System.in.readAllBytes(),
                StandardCharsets.UTF_8));
        Map<String, Object> answer = answer(arg);
        out.println(JSON.writeValueAsString(answer));
        out.flush();
        System.exit(answer.get("ok") == Boolean.TRUE ? 0 : 1); // client threads must not keep the JVM alive
    }

    /** One operation per line of stdin, one answer per line of stdout, in order, until stdin closes. */
    private static void serve(PrintStream out) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            if (line.isBlank()) {
                continue;
            }
            Map<String, Object> answer;
            try {
                answer = answer(JSON.readTree(line));
            } catch (IOException e) { // not JSON: this line fails, the next one is read
                answer = failure(e);
            }
            out.println(JSON.writeValueAsString(answer));
            out.flush();
        }
    }

    private static Map<String, Object> answer(JsonNode arg) {
        try {
            Map<String, Object> answer = new LinkedHashMap<>();
            answer.put("result", run(arg));
            answer.put("ok", true);
            return answer;
        } catch (Throwable e) {
            return failure(e);
        }
    }

    private static Map<String, Object> failure(Throwable e) {
        Map<String, String> err = new LinkedHashMap<>();
        err.put("kind", kind(e));
        err.put("message", describe(e));
        Map<String, Object> answer = new LinkedHashMap<>();
        answer.put("ok", false);
        answer.put("error", err);
        return answer;
    }

    private static Object run(JsonNode arg) throws Exception {
        String op = arg.path("op").asText();
        switch (op) {
            case "cluster": return cluster(arg);
            case "describeTopics": return describeTopics(arg);
            case "describeFeatures": return describeFeatures(arg);
            case "updateFeatures": return updateFeatures(arg);
            case "alterClientQuotas": return alterClientQuotas(arg);
            case "describeClientQuotas": return describeClientQuotas(arg);
            case "createTopic": return createTopic(arg);
            case "deleteTopic": return withAdmin(arg, a -> a.deleteTopics(List.of(arg.get("topic").asText())).all().get());
            case "describeConfigs": return describeConfigs(arg);
            case "alterConfigs": return alterConfigs(arg);
            case "listGroups": return listGroups(arg);
            case "describeGroup": return describeGroup(arg);
            case "deleteGroups": return deleteGroups(arg);
            case "listShareGroups": return listShareGroups(arg);
            case "describeShareGroup": return describeShareGroup(arg);
            case "shareConsume": return shareConsume(arg);
            case "shareHold": return shareHold(arg);
            case "listShareGroupOffsets": return listShareGroupOffsets(arg);
            case "alterShareGroupOffsets": return alterShareGroupOffsets(arg);
            case "deleteShareGroupOffsets": return deleteShareGroupOffsets(arg);
            case "produce": return produce(arg);
            case "transactions": return transactions(arg);
            case "fencedTransactions": return fencedTransactions(arg);
            case "transactionalOffsets": return transactionalOffsets(arg);
            case "consume": return consume(arg);
            case "offsetsForTimes": return offsetsForTimes(arg);
            case "groupConsume": return groupConsume(arg);
            case "rebalance": return rebalance(arg);
            case "wordcount": return wordcount(arg);
            default: throw new IllegalArgumentException("unknown op " + op);
        }
    }

    // -- errors -----------------------------------------------------------------------------------

    private static String kind(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof RecordTooLargeException) return "MESSAGE_TOO_LARGE";
            if (t instanceof UnknownTopicOrPartitionException) return "UNKNOWN_TOPIC_OR_PARTITION";
            if (t instanceof UnsupportedVersionException) return "UNSUPPORTED_VERSION";
            if (t instanceof TimeoutException || t instanceof java.util.concurrent.TimeoutException) return "TIMEOUT";
        }
        return "OTHER";
    }

    private static String describe(Throwable e) {
        StringBuilder b = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (b.length() > 0) b.append(" <- ");
            b.append(t.getClass().getSimpleName()).append(": ").append(t.getMessage());
        }
        return b.toString();
    }

    // -- configuration ------------------------------------------------------------------------------

    private static long timeoutMs(JsonNode arg) {
        return arg.path("timeoutMs").asLong(20_000);
    }

    private static Properties common(JsonNode arg) {
        Properties p = new Properties();
        p.put("bootstrap.servers", arg.get("bootstrap").asText());
        p.put("client.id", "kbroker-compat");
        return p;
    }

    private static Properties consumerProps(JsonNode arg, String group) {
        Properties p = common(arg);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "200");
        if (arg.path("readCommitted").asBoolean(false)) {
            p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        }
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            String protocol = arg.path("groupProtocol").asText("classic");
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
            if (protocol.equals("classic")) { // quick rebalances for a short test; the new protocol sets its own
                p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "300");
                p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "6000");
            }
        }
        return p;
    }

    private static Properties producerProps(JsonNode arg) {
        Properties p = common(arg);
        long timeout = timeoutMs(arg);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Long.toString(timeout));
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, Long.toString(timeout));
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Long.toString(timeout + 5));
        String codec = arg.path("compression").asText("none");
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec.isEmpty() ? "none" : codec);
        return p;
    }

    // -- records ------------------------------------------------------------------------------------

    private static byte[] unb64(JsonNode n) {
        return n == null || n.isNull() ? null : Base64.getDecoder().decode(n.asText());
    }

    private static String b64(byte[] b) {
        return b == null ? null : Base64.getEncoder().encodeToString(b);
    }

    private static List<ProducerRecord<byte[], byte[]>> records(String topic, JsonNode messages) {
        List<ProducerRecord<byte[], byte[]>> out = new ArrayList<>();
        for (JsonNode m : messages) {
            List<Header> headers = new ArrayList<>();
            for (JsonNode h : m.path("headers")) {
                headers.add(new RecordHeader(h.get(0).asText(), unb64(h.get(1))));
            }
            Integer partition = m.path("partition").isNull() || m.path("partition").isMissingNode()
                    ? null : m.get("partition").asInt();
            Long timestamp = m.path("timestamp").isNull() || m.path("timestamp").isMissingNode()
                    ? null : m.get("timestamp").asLong();
            out.add(new ProducerRecord<>(topic, partition, timestamp, unb64(m.get("key")), unb64(m.get("value")),
                    headers));
        }
        return out;
    }

    private static Map<String, Object> message(ConsumerRecord<byte[], byte[]> r) {
        List<List<String>> headers = new ArrayList<>();
        for (Header h : r.headers()) {
            headers.add(Arrays.asList(h.key(), b64(h.value())));
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("key", b64(r.key()));
        m.put("value", b64(r.value()));
        m.put("headers", headers);
        m.put("partition", r.partition());
        m.put("timestamp", r.timestamp());
        m.put("offset", r.offset());
        return m;
    }

    // -- admin --------------------------------------------------------------------------------------

    interface AdminCall {
        Object apply(Admin admin) throws Exception;
    }

    private static Object withAdmin(JsonNode arg, AdminCall call) throws Exception {
        Properties p = common(arg);
        int timeout = (int) timeoutMs(arg);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, Integer.toString(timeout));
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, Integer.toString(timeout));
        try (Admin admin = Admin.create(p)) {
            return call.apply(admin);
        }
    }

    private static Object cluster(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            List<List<Object>> brokers = new ArrayList<>();
            for (Node n : admin.describeCluster().nodes().get()) {
                brokers.add(Arrays.asList(n.host(), n.port()));
            }
            Map<String, Integer> topics = new HashMap<>();
            List<String> names = new ArrayList<>();
            arg.path("topics").forEach(t -> names.add(t.asText()));
            for (var e : admin.describeTopics(names).topicNameValues().entrySet()) {
                try {
                    TopicDescription d = e.getValue().get();
                    topics.put(e.getKey(), d.partitions().size());
                } catch (ExecutionException missing) {
                    // an unknown topic is left out, as the other drivers do
                }
            }
            Map<String, Object> res = new LinkedHashMap<>();
            res.put("brokers", brokers);
            res.put("topics", topics);
            return res;
        });
    }

    private static List<Integer> ids(List<Node> nodes) {
        List<Integer> out = new ArrayList<>();
        nodes.forEach(n -> out.add(n.id()));
        return out;
    }

    // Admin.describeTopics as a Kafka 4 client sends it (DescribeTopicPartitions, paged by "limit" partitions
    // per answer when given): per topic its partitions with leader, replicas and ISR, its authorised
    // operations, or the error kind.
    private static Object describeTopics(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            List<String> names = new ArrayList<>();
            arg.path("topics").forEach(t -> names.add(t.asText()));
            DescribeTopicsOptions options = new DescribeTopicsOptions().includeAuthorizedOperations(true);
            if (arg.has("limit")) options.partitionSizeLimitPerResponse(arg.get("limit").asInt());
            Map<String, Object> out = new TreeMap<>();
            for (var e : admin.describeTopics(names, options).topicNameValues().entrySet()) {
                Map<String, Object> topic = new LinkedHashMap<>();
                try {
                    TopicDescription d = e.getValue().get();
                    List<Object> partitions = new ArrayList<>();
                    for (TopicPartitionInfo p : d.partitions()) {
                        Map<String, Object> part = new LinkedHashMap<>();
                        part.put("partition", p.partition());
                        part.put("leader", p.leader() == null ? -1 : p.leader().id());
                        part.put("replicas", ids(p.replicas()));
                        part.put("isr", ids(p.isr()));
                        partitions.add(part);
                    }
                    topic.put("id", d.topicId().toString());
                    topic.put("partitions", partitions);
                    List<String> ops = new ArrayList<>();
                    if (d.authorizedOperations() != null) d.authorizedOperations().forEach(o -> ops.add(o.name()));
                    Collections.sort(ops);
                    topic.put("authorizedOperations", ops);
                } catch (ExecutionException failed) {
                    topic.put("error", kind(failed));
                }
                out.put(e.getKey(), topic);
            }
            return out;
        });
    }

    // Admin.describeFeatures: {"supported": {name: [min, max]}, "finalized": {name: level}, "epoch": n}
    private static Object describeFeatures(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            FeatureMetadata f = admin.describeFeatures().featureMetadata().get();
            Map<String, Object> supported = new TreeMap<>();
            f.supportedFeatures().forEach((k, v) -> supported.put(k, Arrays.asList(v.minVersion(), v.maxVersion())));
            Map<String, Object> finalized = new TreeMap<>();
            f.finalizedFeatures().forEach((k, v) -> finalized.put(k, v.maxVersionLevel()));
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("supported", supported);
            out.put("finalized", finalized);
            out.put("epoch", f.finalizedFeaturesEpoch().orElse(-1L));
            return out;
        });
    }

    // Admin.updateFeatures: {"updates": {name: [level, "UPGRADE"|"SAFE_DOWNGRADE"|"UNSAFE_DOWNGRADE"]},
    // "validateOnly": bool}; per feature null (done) or the error kind and message.
    private static Object updateFeatures(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            Map<String, FeatureUpdate> updates = new HashMap<>();
            arg.path("updates").fields().forEachRemaining(e -> updates.put(e.getKey(), new FeatureUpdate(
                (short) e.getValue().get(0).asInt(), FeatureUpdate.UpgradeType.valueOf(e.getValue().get(1).asText()))));
            UpdateFeaturesOptions options = new UpdateFeaturesOptions().validateOnly(arg.path("validateOnly").asBoolean());
            Map<String, Object> out = new TreeMap<>();
            for (var e : admin.updateFeatures(updates, options).values().entrySet()) {
                try {
                    e.getValue().get();
                    out.put(e.getKey(), null);
                } catch (ExecutionException failed) {
                    out.put(e.getKey(), failed.getCause().getClass().getSimpleName() + ": " + failed.getCause().getMessage());
                }
            }
            return out;
        });
    }

    private static Map<String, String> entityOf(JsonNode n) {
        Map<String, String> out = new HashMap<>();
        n.fields().forEachRemaining(e -> out.put(e.getKey(), e.getValue().isNull() ? null : e.getValue().asText()));
        return out;
    }

    // Admin.alterClientQuotas: {"entries": [{"entity": {type: name or null}, "ops": {key: value or null}}],
    // "validateOnly": bool}; per entry, in order, null (done) or the exception's class and message.
    private static Object alterClientQuotas(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            List<ClientQuotaAlteration> alterations = new ArrayList<>();
            for (JsonNode entry : arg.path("entries")) {
                List<ClientQuotaAlteration.Op> ops = new ArrayList<>();
                entry.path("ops").fields().forEachRemaining(e -> ops.add(new ClientQuotaAlteration.Op(
                    e.getKey(), e.getValue().isNull() ? null : e.getValue().asDouble())));
                alterations.add(new ClientQuotaAlteration(new ClientQuotaEntity(entityOf(entry.path("entity"))), ops));
            }
            var options = new AlterClientQuotasOptions().validateOnly(arg.path("validateOnly").asBoolean());
            var values = admin.alterClientQuotas(alterations, options).values();
            List<Object> out = new ArrayList<>();
            for (ClientQuotaAlteration a : alterations) {
                try {
                    values.get(a.entity()).get();
                    out.add(null);
                } catch (ExecutionException failed) {
                    out.add(failed.getCause().getClass().getSimpleName() + ": " + failed.getCause().getMessage());
                }
            }
            return out;
        });
    }

    // Admin.describeClientQuotas: {"components": [[type, "exact"|"default"|"specified", name]], "strict": bool};
    // [{"entity": {type: name or null}, "values": {key: value}}], or {"error": class and message}.
    private static Object describeClientQuotas(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            List<ClientQuotaFilterComponent> components = new ArrayList<>();
            for (JsonNode c : arg.path("components")) {
                String type = c.get(0).asText();
                switch (c.get(1).asText()) {
                    case "exact": components.add(ClientQuotaFilterComponent.ofEntity(type, c.get(2).asText())); break;
                    case "default": components.add(ClientQuotaFilterComponent.ofDefaultEntity(type)); break;
                    default: components.add(ClientQuotaFilterComponent.ofEntityType(type));
                }
            }
            ClientQuotaFilter filter = arg.path("strict").asBoolean()
                ? ClientQuotaFilter.containsOnly(components) : ClientQuotaFilter.contains(components);
            try {
                List<Object> out = new ArrayList<>();
                for (var e : admin.describeClientQuotas(filter).entities().get().entrySet()) {
                    Map<String, Object> item = new LinkedHashMap<>();
                    item.put("entity", new TreeMap<>(e.getKey().entries()));
                    item.put("values", new TreeMap<>(e.getValue()));
                    out.add(item);
                }
                return out;
            } catch (ExecutionException failed) {
                return Map.of("error", failed.getCause().getClass().getSimpleName() + ": " + failed.getCause().getMessage());
            }
        });
    }

    private static Map<String, String> strings(JsonNode n) {
        Map<String, String> out = new HashMap<>();
        n.fields().forEachRemaining(e -> out.put(e.getKey(), e.getValue().asText()));
        return out;
    }

    private static Object createTopic(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            NewTopic t = new NewTopic(arg.get("topic").asText(), arg.get("partitions").asInt(), (short) 1)
                    .configs(strings(arg.path("configs")));
            admin.createTopics(List.of(t)).all().get();
            return null;
        });
    }

    private static Object describeConfigs(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, arg.get("topic").asText());
            Config c = admin.describeConfigs(List.of(r)).all().get().get(r);
            Map<String, String> res = new HashMap<>();
            for (ConfigEntry e : c.entries()) {
                res.put(e.name(), e.value());
            }
            return res;
        });
    }

    private static Object alterConfigs(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, arg.get("topic").asText());
            List<AlterConfigOp> ops = new ArrayList<>();
            strings(arg.path("configs")).forEach((k, v) ->
                    ops.add(new AlterConfigOp(new ConfigEntry(k, v), AlterConfigOp.OpType.SET)));
            admin.incrementalAlterConfigs(Map.of(r, ops)).all().get();
            return null;
        });
    }

    private static Object listGroups(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            List<String> names = new ArrayList<>();
            for (GroupListing g : admin.listGroups().all().get()) {
                names.add(g.groupId());
            }
            return names;
        });
    }

    private static Object describeGroup(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            String group = arg.get("group").asText();
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
            Map<String, Object> res = new LinkedHashMap<>();
            res.put("state", d.groupState().toString());
            res.put("members", d.members().size());
            return res;
        });
    }

    /** deleteConsumerGroups: per group null (deleted) or the simple name of the exception it failed with. */
    private static Object deleteGroups(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            List<String> groups = new ArrayList<>();
            arg.get("groups").forEach(g -> groups.add(g.asText()));
            Map<String, Object> res = new LinkedHashMap<>();
            for (var e : admin.deleteConsumerGroups(groups).deletedGroups().entrySet()) {
                try {
                    e.getValue().get();
                    res.put(e.getKey(), null);
                } catch (ExecutionException failed) {
                    res.put(e.getKey(), failed.getCause().getClass().getSimpleName());
                }
            }
            return res;
        });
    }

    // -- share groups (KIP-932) ------------------------------------------------------------------------

    private static Object listShareGroups(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            Map<String, String> out = new TreeMap<>();
            for (GroupListing g : admin.listGroups(ListGroupsOptions.forShareGroups()).all().get()) {
                out.put(g.groupId(), g.groupState().map(Object::toString).orElse(null));
            }
            return out;
        });
    }

    private static Object describeShareGroup(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            String group = arg.get("group").asText();
            ShareGroupDescription d = admin.describeShareGroups(List.of(group)).all().get().get(group);
            Map<String, Object> res = new LinkedHashMap<>();
            res.put("state", d.groupState().toString());
            res.put("groupEpoch", d.groupEpoch());
            res.put("assignmentEpoch", d.targetAssignmentEpoch());
            List<Map<String, Object>> members = new ArrayList<>();
            for (ShareMemberDescription m : d.members()) {
                Map<String, Object> member = new LinkedHashMap<>();
                member.put("clientId", m.clientId());
                member.put("memberEpoch", m.memberEpoch());
                List<String> partitions = new ArrayList<>();
                for (TopicPartition tp : m.assignment().topicPartitions()) {
                    partitions.add(tp.topic() + "-" + tp.partition());
                }
                Collections.sort(partitions);
                member.put("partitions", partitions);
                members.add(member);
            }
            res.put("members", members);
            return res;
        });
    }

    /**
     * Admin.listShareGroupOffsets of every partition of the group: "topic-partition" -> {"startOffset",
     * "leaderEpoch", "lag"} (absent values null), or null for a partition the admin answers without offsets.
     */
    private static Object listShareGroupOffsets(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            String group = arg.get("group").asText();
            Map<TopicPartition, SharePartitionOffsetInfo> offsets = admin.listShareGroupOffsets(
                    Map.of(group, new ListShareGroupOffsetsSpec())).partitionsToOffsetInfo(group).get();
            Map<String, Object> res = new TreeMap<>();
            for (Map.Entry<TopicPartition, SharePartitionOffsetInfo> e : offsets.entrySet()) {
                SharePartitionOffsetInfo info = e.getValue();
                Map<String, Object> m = null;
                if (info != null) {
                    m = new LinkedHashMap<>();
                    m.put("startOffset", info.startOffset());
                    m.put("leaderEpoch", info.leaderEpoch().orElse(null));
                    m.put("lag", info.lag().orElse(null));
                }
                res.put(e.getKey().topic() + "-" + e.getKey().partition(), m);
            }
            return res;
        });
    }

    /** Admin.alterShareGroupOffsets: ``offsets`` is {"topic": {"partition": offset}}; the answer is the error
     *  class of each "topic-partition" (null: altered). */
    private static Object alterShareGroupOffsets(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            Map<TopicPartition, Long> offsets = new LinkedHashMap<>();
            for (var t : (Iterable<Map.Entry<String, JsonNode>>) arg.get("offsets")::fields) {
                for (var p : (Iterable<Map.Entry<String, JsonNode>>) t.getValue()::fields) {
                    offsets.put(new TopicPartition(t.getKey(), Integer.parseInt(p.getKey())), p.getValue().asLong());
                }
            }
            var result = admin.alterShareGroupOffsets(arg.get("group").asText(), offsets);
            Map<String, Object> res = new TreeMap<>();
            for (TopicPartition tp : offsets.keySet()) {
                res.put(tp.topic() + "-" + tp.partition(), failure(() -> result.partitionResult(tp).get()));
            }
            return res;
        });
    }

    /** Admin.deleteShareGroupOffsets of the ``topics``: the error class of each topic (null: deleted). */
    private static Object deleteShareGroupOffsets(JsonNode arg) throws Exception {
        return withAdmin(arg, admin -> {
            Set<String> topics = new TreeSet<>();
            arg.get("topics").forEach(t -> topics.add(t.asText()));
            var result = admin.deleteShareGroupOffsets(arg.get("group").asText(), topics);
            Map<String, Object> res = new TreeMap<>();
            for (String topic : topics) {
                res.put(topic, failure(() -> result.topicResult(topic).get()));
            }
            return res;
        });
    }

    interface Wait {
        void get() throws Exception;
    }

    /** The simple class name of what a future failed with, null when it succeeded. */
    private static String failure(Wait wait) throws Exception {
        try {
            wait.get();
            return null;
        } catch (ExecutionException e) {
            return e.getCause().getClass().getSimpleName();
        }
    }

    /** A KafkaShareConsumer (implicit acknowledgement) polling until ``count`` records or the timeout. */
    private static Object shareConsume(JsonNode arg) {
        Properties p = common(arg);
        p.put("client.id", arg.path("clientId").asText("kbroker-compat"));
        p.put(ConsumerConfig.GROUP_ID_CONFIG, arg.get("group").asText());
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        int count = arg.get("count").asInt();
        long deadline = System.currentTimeMillis() + timeoutMs(arg);
        List<Map<String, Object>> got = new ArrayList<>();
        try (KafkaShareConsumer<byte[], byte[]> c = new KafkaShareConsumer<>(p)) {
            c.subscribe(List.of(arg.get("topic").asText()));
            while (got.size() < count && System.currentTimeMillis() < deadline) {
                for (var r : c.poll(Duration.ofMillis(200))) {
                    Map<String, Object> m = message(r);
                    m.put("deliveryCount", r.deliveryCount().orElse((short) 0));
                    got.add(m);
                }
            }
            c.commitSync();
        }
        return got;
    }

    /**
     * A slow KafkaShareConsumer (explicit acknowledgement): polls until it has a record, then holds what it got
     * for ``holdMs`` without acknowledging it, and accepts it at the end. With ``renew`` it acknowledges the
     * records with RENEW (KIP-1222) every ``renewEveryMs`` and polls until they come back (the client returns
     * renewed records from the next poll and fetches nothing new meanwhile). The answer: the records as first
     * delivered, how many times each came back renewed, and the commit's error per partition (null: none).
     */
    private static Object shareHold(JsonNode arg) throws Exception {
        Properties p = common(arg);
        p.put("client.id", arg.path("clientId").asText("kbroker-compat"));
        p.put(ConsumerConfig.GROUP_ID_CONFIG, arg.get("group").asText());
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.SHARE_ACKNOWLEDGEMENT_MODE_CONFIG, "explicit");
        boolean renew = arg.path("renew").asBoolean(false);
        long holdMs = arg.get("holdMs").asLong();
        long renewEveryMs = arg.path("renewEveryMs").asLong(holdMs);
        long deadline = System.currentTimeMillis() + timeoutMs(arg);
        List<ConsumerRecord<byte[], byte[]>> held = new ArrayList<>();
        List<Map<String, Object>> got = new ArrayList<>();
        Map<Long, Integer> renewed = new TreeMap<>();
        Map<String, Object> res = new LinkedHashMap<>();
        try (KafkaShareConsumer<byte[], byte[]> c = new KafkaShareConsumer<>(p)) {
            c.subscribe(List.of(arg.get("topic").asText()));
            while (held.isEmpty() && System.currentTimeMillis() < deadline) {
                for (var r : c.poll(Duration.ofMillis(200))) {
                    held.add(r);
                    Map<String, Object> m = message(r);
                    m.put("deliveryCount", r.deliveryCount().orElse((short) 0));
                    got.add(m);
                }
            }
            long until = System.currentTimeMillis() + holdMs;
            for (long now = System.currentTimeMillis(); now < until; now = System.currentTimeMillis()) {
                Thread.sleep(Math.min(renewEveryMs, until - now)); // the application processing, slowly
                if (!renew || System.currentTimeMillis() >= until) {
                    continue;
                }
                for (var r : held) {
                    c.acknowledge(r, AcknowledgeType.RENEW);
                }
                Set<Long> back = new HashSet<>();
                while (back.size() < held.size() && System.currentTimeMillis() < deadline) {
                    for (var r : c.poll(Duration.ofMillis(200))) {
                        back.add(r.offset());
                        renewed.merge(r.offset(), 1, Integer::sum);
                    }
                }
            }
            for (var r : held) {
                c.acknowledge(r, AcknowledgeType.ACCEPT);
            }
            Map<String, Object> errors = new TreeMap<>();
            for (Map.Entry<TopicIdPartition, java.util.Optional<KafkaException>> e : c.commitSync().entrySet()) {
                errors.put(e.getKey().topic() + "-" + e.getKey().partition(),
                        e.getValue().map(x -> x.getClass().getSimpleName()).orElse(null));
            }
            res.put("records", got);
            res.put("renewed", renewed);
            res.put("commit", errors);
        }
        return res;
    }

    // -- producing ------------------------------------------------------------------------------------

    private static Object produce(JsonNode arg) throws Exception {
        Properties p = producerProps(arg);
        JsonNode idem = arg.path("idempotent");
        if (idem.isBoolean()) {
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, Boolean.toString(idem.asBoolean()));
        }
        List<ProducerRecord<byte[], byte[]>> recs = records(arg.get("topic").asText(), arg.path("messages"));
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (var r : recs) {
                acks.add(producer.send(r));
            }
            producer.flush();
            for (var a : acks) {
                a.get();
            }
            // An application that lives on after sending (its client keeps pushing telemetry, KIP-714).
            Thread.sleep(arg.path("stayOpenMs").asLong(0));
        }
        return recs.size();
    }

    private static Object transactions(JsonNode arg) throws Exception {
        Properties p = producerProps(arg);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, arg.get("transactionalId").asText());
        String topic = arg.get("topic").asText();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            producer.beginTransaction();
            for (var r : records(topic, arg.path("committed"))) {
                producer.send(r);
            }
            producer.commitTransaction();
            producer.beginTransaction();
            for (var r : records(topic, arg.path("aborted"))) {
                producer.send(r);
            }
            producer.flush(); // the aborted records reach the log, and the abort marker follows them
            producer.abortTransaction();
        }
        return arg.path("committed").size() + arg.path("aborted").size();
    }

    /**
     * A zombie: producer A commits one transaction and opens a second; producer B, with the same transactional
     * id, initialises (which aborts A's open transaction) and commits its own; A then tries to go on. The
     * answer names what A's send and commit raised ("committed" if nothing did).
     */
    private static Object fencedTransactions(JsonNode arg) throws Exception {
        Properties p = producerProps(arg);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, arg.get("transactionalId").asText());
        List<ProducerRecord<byte[], byte[]>> recs = records(arg.get("topic").asText(), arg.path("records"));
        Map<String, Object> out = new LinkedHashMap<>();
        try (KafkaProducer<byte[], byte[]> a = new KafkaProducer<>(p)) {
            a.initTransactions();
            a.beginTransaction();
            a.send(recs.get(0)).get();
            a.commitTransaction();
            a.beginTransaction();
            a.send(recs.get(1)).get();
            try (KafkaProducer<byte[], byte[]> b = new KafkaProducer<>(p)) {
                b.initTransactions();
                b.beginTransaction();
                b.send(recs.get(2)).get();
                b.commitTransaction();
            }
            try {
                a.send(recs.get(3)).get();
                a.commitTransaction();
                out.put("zombie", "committed");
            } catch (Exception e) {
                Throwable t = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
                out.put("zombie", t.getClass().getSimpleName());
            }
        }
        return out;
    }

    /**
     * sendOffsetsToTransaction: offset ``committed`` for partition 0 of ``offsetsTopic`` in a transaction that
     * commits (with one record), then ``aborted`` in one that aborts.
     */
    private static Object transactionalOffsets(JsonNode arg) throws Exception {
        Properties p = producerProps(arg);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, arg.get("transactionalId").asText());
        List<ProducerRecord<byte[], byte[]>> recs = records(arg.get("topic").asText(), arg.path("records"));
        TopicPartition tp = new TopicPartition(arg.get("offsetsTopic").asText(), 0);
        ConsumerGroupMetadata group = new ConsumerGroupMetadata(arg.get("group").asText());
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(recs.get(0));
            producer.sendOffsetsToTransaction(Map.of(tp, new OffsetAndMetadata(arg.get("committed").asLong())), group);
            producer.commitTransaction();
            producer.beginTransaction();
            producer.send(recs.get(1));
            producer.sendOffsetsToTransaction(Map.of(tp, new OffsetAndMetadata(arg.get("aborted").asLong())), group);
            producer.abortTransaction();
        }
        return 2;
    }

    // -- consuming ------------------------------------------------------------------------------------

    private static List<TopicPartition> partitions(KafkaConsumer<?, ?> c, String topic, long timeout) {
        List<TopicPartition> out = new ArrayList<>();
        for (PartitionInfo info : c.partitionsFor(topic, Duration.ofMillis(timeout))) {
            out.add(new TopicPartition(topic, info.partition()));
        }
        return out;
    }

    private static Object consume(JsonNode arg) {
        String topic = arg.get("topic").asText();
        int count = arg.get("count").asInt();
        long deadline = System.currentTimeMillis() + timeoutMs(arg);
        List<Map<String, Object>> got = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(consumerProps(arg, null))) {
            List<TopicPartition> tps = partitions(c, topic, timeoutMs(arg));
            c.assign(tps);
            c.seekToBeginning(tps);
            while (got.size() < count && System.currentTimeMillis() < deadline) {
                for (var r : c.poll(Duration.ofMillis(200))) {
                    got.add(message(r));
                }
            }
        }
        return got;
    }

    private static Object offsetsForTimes(JsonNode arg) {
        String topic = arg.get("topic").asText();
        Map<TopicPartition, Long> query = new HashMap<>();
        for (int i = 0; i < arg.get("partitions").asInt(); i++) {
            query.put(new TopicPartition(topic, i), arg.get("timestamp").asLong());
        }
        Map<String, Long> res = new HashMap<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(consumerProps(arg, null))) {
            for (var e : c.offsetsForTimes(query, Duration.ofMillis(timeoutMs(arg))).entrySet()) {
                OffsetAndTimestamp o = e.getValue();
                res.put(Integer.toString(e.getKey().partition()), o == null ? -1L : o.offset());
            }
        }
        return res;
    }

    /** Takes ``count`` records as a group member and commits the position after exactly those. */
    private static Object groupConsume(JsonNode arg) {
        String topic = arg.get("topic").asText();
        int count = arg.get("count").asInt();
        long deadline = System.currentTimeMillis() + timeoutMs(arg);
        List<Map<String, Object>> got = new ArrayList<>();
        Map<TopicPartition, OffsetAndMetadata> position = new HashMap<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(consumerProps(arg, arg.get("group").asText()))) {
            c.subscribe(List.of(topic));
            while (got.size() < count && System.currentTimeMillis() < deadline) {
                for (var r : c.poll(Duration.ofMillis(200))) {
                    if (got.size() < count) {
                        got.add(message(r));
                        position.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                }
            }
            if (got.size() < count) {
                throw new TimeoutException("took " + got.size() + " of " + count + " records before the deadline");
            }
            c.commitSync(position);
        }
        return got;
    }

    /** A group member on its own thread, publishing its assignment after every poll. */
    private static final class Member implements Runnable {
        final KafkaConsumer<byte[], byte[]> consumer;
        final String topic;
        final AtomicReference<Set<Integer>> assigned = new AtomicReference<>(Set.of());
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicReference<Throwable> failed = new AtomicReference<>();
        final Thread thread = new Thread(this);

        Member(JsonNode arg, String topic) {
            this.consumer = new KafkaConsumer<>(consumerProps(arg, arg.get("group").asText()));
            this.topic = topic;
        }

        public void run() {
            try {
                consumer.subscribe(List.of(topic));
                while (!stop.get()) {
                    consumer.poll(Duration.ofMillis(100));
                    Set<Integer> ps = new TreeSet<>();
                    consumer.assignment().forEach(tp -> ps.add(tp.partition()));
                    assigned.set(ps);
                }
            } catch (Throwable e) {
                failed.set(e);
            } finally {
                consumer.close(); // leaves the group
            }
        }

        void leave() throws InterruptedException {
            stop.set(true);
            thread.join();
        }
    }

    private static boolean settled(Set<Integer> a, Set<Integer> b, int partitions) {
        Set<Integer> all = new HashSet<>(a);
        all.addAll(b);
        return !a.isEmpty() && !b.isEmpty() && all.size() == a.size() + b.size() && all.size() == partitions;
    }

    private static Object rebalance(JsonNode arg) throws Exception {
        String topic = arg.get("topic").asText();
        int partitions = arg.get("partitions").asInt();
        long deadline = System.currentTimeMillis() + timeoutMs(arg);
        Member first = new Member(arg, topic);
        Member second;
        try {
            second = new Member(arg, topic);
        } catch (RuntimeException e) { // the first member's consumer must not outlive the operation
            first.consumer.close();
            throw e;
        }
        first.thread.start();
        second.thread.start();
        try {
            while (System.currentTimeMillis() < deadline
                    && !settled(first.assigned.get(), second.assigned.get(), partitions)) {
                Thread.sleep(50);
            }
            List<Set<Integer>> before = List.of(first.assigned.get(), second.assigned.get());
            second.leave();
            while (System.currentTimeMillis() < deadline && first.assigned.get().size() < partitions) {
                Thread.sleep(50);
            }
            for (Member m : List.of(first, second)) {
                if (m.failed.get() != null) {
                    throw new RuntimeException("a group member failed", m.failed.get());
                }
            }
            Map<String, Object> res = new LinkedHashMap<>();
            res.put("before", before);
            res.put("after", first.assigned.get());
            return res;
        } finally {
            first.leave();
            second.leave();
        }
    }

    // -- Kafka Streams ------------------------------------------------------------------------------------

    /**
     * Word count with exactly-once (v2): lines from ``input`` split into lower-case words, counted per word
     * into ``output`` (String key, Long value). Runs until a read_committed consumer of ``output`` has seen
     * every word of ``expected`` reach its expected count, then closes; returns the last count seen per word.
     */
    private static Object wordcount(JsonNode arg) throws Exception {
        String input = arg.get("input").asText();
        String output = arg.get("output").asText();
        Map<String, Long> expected = new HashMap<>();
        arg.get("expected").fields().forEachRemaining(e -> expected.put(e.getKey(), e.getValue().asLong()));
        Path stateDir = Files.createTempDirectory("kcompat-streams");

        Properties p = common(arg);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, arg.get("applicationId").asText());
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
                .filter((key, word) -> !word.isEmpty())
                .groupBy((key, word) -> word, Grouped.with(Serdes.String(), Serdes.String()))
                .count()
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));

        AtomicReference<Throwable> failed = new AtomicReference<>();
        Map<String, Long> seen = new HashMap<>();
        long deadline = System.currentTimeMillis() + timeoutMs(arg);
        try (KafkaStreams streams = new KafkaStreams(builder.build(), p)) {
            streams.setUncaughtExceptionHandler(e -> {
                failed.compareAndSet(null, e);
                return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
                        .SHUTDOWN_CLIENT;
            });
            streams.start();
            Properties cp = common(arg);
            cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
            cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            cp.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "200");
            try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
                List<TopicPartition> tps = new ArrayList<>();
                for (PartitionInfo info : c.partitionsFor(output, Duration.ofMillis(timeoutMs(arg)))) {
                    tps.add(new TopicPartition(output, info.partition()));
                }
                c.assign(tps);
                c.seekToBeginning(tps);
                while (!seen.equals(expected) && failed.get() == null && System.currentTimeMillis() < deadline) {
                    for (var r : c.poll(Duration.ofMillis(200))) {
                        seen.put(r.key(), r.value());
                    }
                }
            }
            streams.close(Duration.ofMillis(Math.max(1000, deadline - System.currentTimeMillis())));
        }
        if (failed.get() != null) {
            throw new RuntimeException("the Streams application failed", failed.get());
        }
        if (!seen.equals(expected)) {
            throw new TimeoutException("the word counts did not reach the expected ones in time: " + seen);
        }
        return seen;
    }
}
