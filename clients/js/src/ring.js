// The audio a client keeps to send again after a drop. Positions count bytes of 16-bit
// PCM from the start of the stream; the oldest bytes go once `maxBytes` are held.

export class AudioRing {
  /** @param {number} maxBytes */
  constructor(maxBytes) {
    this.maxBytes = maxBytes;
    /** Stream position of the first byte held. */
    this.first = 0;
    this.held = 0;
    /** @type {Uint8Array[]} */
    this.chunks = [];
  }

  /** Stream position after the last byte appended (everything ever sent). */
  get end() {
    return this.first + this.held;
  }

  /** @param {Uint8Array} pcm */
  append(pcm) {
    if (!pcm.length) return;
    this.chunks.push(pcm);
    this.held += pcm.length;
    let over = this.held - this.maxBytes;
    over += over % 2; // keep whole samples
    while (over > 0 && this.chunks.length) {
      const oldest = this.chunks[0];
      if (oldest.length <= over) {
        this.chunks.shift();
        this.dropped(oldest.length);
        over -= oldest.length;
      } else {
        this.chunks[0] = oldest.subarray(over);
        this.dropped(over);
        over = 0;
      }
    }
  }

  dropped(bytes) {
    this.first += bytes;
    this.held -= bytes;
  }

  /**
   * Up to `most` bytes from stream `position` on (from the oldest byte held when
   * `position` is older: what fell out of the ring is gone).
   * @param {number} position
   * @param {number} most
   * @returns {Uint8Array}
   */
  since(position, most) {
    let skip = Math.max(position, this.first) - this.first;
    const parts = [];
    let wanted = most;
    for (const chunk of this.chunks) {
      if (wanted <= 0) break;
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      const part = chunk.subarray(skip, skip + wanted);
      parts.push(part);
      wanted -= part.length;
      skip = 0;
    }
    if (parts.length === 1) return parts[0].slice();
    const out = new Uint8Array(most - wanted);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}
