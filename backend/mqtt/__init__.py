"""The backend's side of MQTT: the bridge to tablets and configuration publishing."""
