"""The MQTT wire contract shared by the Trolley server and the kiosk client.

Topics (`mqtt.topics`), the signed envelope (`mqtt.envelope`), typed message bodies
(`mqtt.messages`), the paho client factory (`mqtt.client`), the embedded amqtt broker
(`mqtt.broker`), the broker password file (`mqtt.passwords`) and Mosquitto configuration
(`mqtt.mosquitto`). This package is a leaf: it never imports flask, `server` or `kiosk_client`.
"""
