# kbroker in a container, configured like the official apache/kafka image: KAFKA_* environment variables
# map to Kafka settings (KAFKA_NUM_PARTITIONS=3 is num.partitions=3; KAFKA_LISTENERS,
# KAFKA_ADVERTISED_LISTENERS, KAFKA_LOG_DIRS, ...), so a compose file can swap one image for the other.
FROM python:3.11-slim

WORKDIR /opt/kbroker
COPY pyproject.toml README.md ./
COPY kbroker ./kbroker
RUN pip install --no-cache-dir ".[fast]"

# The defaults the official image uses for a single node, in the image's own variables.
ENV KAFKA_LISTENERS=PLAINTEXT://0.0.0.0:9092 \
    KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:9092 \
    KAFKA_LOG_DIRS=/var/lib/kafka/data

VOLUME /var/lib/kafka/data
EXPOSE 9092
ENTRYPOINT ["kbroker", "serve"]
