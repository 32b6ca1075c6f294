"""A device on Debian's paho-mqtt (python3-paho-mqtt 1.6), for the broker's interoperability test.

Connects over mutual TLS with the device certificate (MQTT 3.1.1 or 5), subscribes to an allowed filter and a
refused one, publishes one QoS 1 message on the allowed subtree and waits for it to come back. Prints what the
broker answered as one JSON line: the CONNACK code, the SUBACK codes, whether the PUBACK came, the message.

usage: paho-client.py HOST PORT CA CERT KEY CLIENT_ID 311|5 ALLOWED_FILTER REFUSED_FILTER TOPIC PAYLOAD
"""

import json
import sys
import threading

import paho.mqtt.client as mqtt

TIMEOUT_S = 10

host, port, ca, cert, key, client_id, version, allowed, refused, topic, payload = sys.argv[1:12]
v5 = version == "5"
result = {}
connected, subscribed, acked, received = (threading.Event() for _ in range(4))


def code(rc):
    """A paho ReasonCodes object (MQTT 5) or a plain int (3.1.1), as an int."""
    return rc.value if hasattr(rc, "value") else int(rc)


def on_connect(client, userdata, flags, rc, properties=None):
    result["connack"] = code(rc)
    connected.set()


def on_subscribe(client, userdata, mid, granted, properties=None):
    result["granted"] = [code(g) for g in granted]
    subscribed.set()


def on_publish(client, userdata, mid):
    result["puback"] = True
    acked.set()


def on_message(client, userdata, message):
    result["received"] = {
        "topic": message.topic,
        "payload": message.payload.decode(),
        "qos": message.qos,
    }
    received.set()


def wait(event, what):
    if not event.wait(TIMEOUT_S):
        print(json.dumps({**result, "error": f"no {what} within {TIMEOUT_S} s"}))
        sys.exit(2)


if v5:
    client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
else:
    client = mqtt.Client(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)
client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_publish = on_publish
client.on_message = on_message
client.connect(host, int(port), keepalive=30)
client.loop_start()
try:
    wait(connected, "CONNACK")
    if result["connack"] != 0:
        print(json.dumps(result))
        sys.exit(0)
    client.subscribe([(allowed, 1), (refused, 1)])
    wait(subscribed, "SUBACK")
    client.publish(topic, payload, qos=1)
    wait(acked, "PUBACK")
    wait(received, "message")
    print(json.dumps(result))
finally:
    client.disconnect()
    client.loop_stop()
