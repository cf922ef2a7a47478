// The microphone as 16 kHz mono 16-bit PCM frames of 100 ms, from an AudioWorklet (the
// resampling runs on the audio thread; the page gets each frame's ArrayBuffer).

/**
 * Open the microphone; `onFrame(ArrayBuffer)` gets each frame. Returns `{ context, stop }`.
 * @param {{ onFrame: (frame: ArrayBuffer) => void, workletUrl?: string | URL,
 *           constraints?: MediaTrackConstraints }} options
 */
export async function openMicrophone({ onFrame, workletUrl, constraints = {} }) {
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, ...constraints },
  });
  const context = new AudioContext({ sampleRate: 16000 });
  try {
    await context.audioWorklet.addModule(workletUrl || new URL("./pcm-worklet.js", import.meta.url));
  } catch (error) {
    media.getTracks().forEach((track) => track.stop());
    await context.close();
    throw error;
  }
  const source = context.createMediaStreamSource(media);
  const node = new AudioWorkletNode(context, "pcm-frames");
  node.port.onmessage = (event) => onFrame(event.data);
  source.connect(node);
  return {
    context,
    stop() {
      node.port.onmessage = null;
      source.disconnect();
      media.getTracks().forEach((track) => track.stop());
      return context.close();
    },
  };
}
