// AudioWorklet: microphone samples (any rate) → 16 kHz mono PCM16 frames of 100 ms.
// Runs on the audio thread; posts each frame's ArrayBuffer to the page.

const TARGET_RATE = 16000;
const FRAME_SAMPLES = 1600; // 100 ms

class PcmFrames extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.position = 0; // fractional read position into the pending input
    this.pending = new Float32Array(0);
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    const input = new Float32Array(this.pending.length + channel.length);
    input.set(this.pending);
    input.set(channel, this.pending.length);
    let pos = this.position;
    while (pos + 1 < input.length) {
      const i = Math.floor(pos);
      const frac = pos - i;
      const value = input[i] * (1 - frac) + input[i + 1] * frac; // linear interpolation
      const clipped = Math.max(-1, Math.min(1, value));
      this.frame[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
      if (this.filled === FRAME_SAMPLES) {
        this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
        this.frame = new Int16Array(FRAME_SAMPLES);
        this.filled = 0;
      }
      pos += this.step;
    }
    const keep = Math.floor(pos);
    this.pending = input.slice(keep);
    this.position = pos - keep;
    return true;
  }
}

registerProcessor("pcm-frames", PcmFrames);
