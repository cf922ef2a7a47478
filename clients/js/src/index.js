// stt-gateway's browser and Node.js client: a stream that outlives its connections, and
// the microphone as the PCM frames it sends.
export { ListenStream } from "./stream.js";
export { openMicrophone } from "./microphone.js";
export { AudioRing } from "./ring.js";
export { mayReconnect, reconnectDelay, RETRY_CODES } from "./reconnect.js";
