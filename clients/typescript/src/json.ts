// A strict JSON scanner that sees what JSON.parse hides: repeated keys (JSON.parse keeps the last one silently), strings
// and keys that hold an unpaired surrogate escape such as "\ud800" (JSON.parse turns them into lone surrogates), the raw
// text of each value (to measure the payload as it was sent) and nesting depth. Its grammar is RFC 8259, as
// System.Text.Json reads it by default: no comments, no trailing commas, whitespace is space, tab, LF and CR only.

import { InvalidTaskError } from './errors.js';

/** How deep JSON may nest, the task object and the payload included (`{"payload":[[1]]}` is 3 levels). */
export const MAX_DEPTH = 64;

export interface JsonMember {
  key: string;
  /** False when the key holds an unpaired surrogate escape. */
  keyIsText: boolean;
  value: JsonNode;
}

interface NodeBase {
  /** Offsets of the value's text in the scanned string (end exclusive). */
  start: number;
  end: number;
  /** Every string and key in the value (itself included) is Unicode text: no unpaired surrogate escape. */
  isText: boolean;
}

export type JsonNode =
  | (NodeBase & { kind: 'object'; members: JsonMember[] })
  | (NodeBase & { kind: 'array' })
  | (NodeBase & { kind: 'string'; value: string })
  | (NodeBase & { kind: 'number'; raw: string })
  | (NodeBase & { kind: 'true' | 'false' | 'null' });

/** Whether a string holds no unpaired surrogate. */
export function isWellFormed(value: string): boolean {
  const native = (value as unknown as { isWellFormed?: () => boolean }).isWellFormed;
  if (typeof native === 'function') return native.call(value);
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value);
}

class Scanner {
  pos = 0;

  constructor(readonly text: string) {}

  fail(problem: string): never {
    throw new InvalidTaskError('body', `not valid JSON (${problem})`);
  }

  where(): string {
    return this.pos >= this.text.length ? 'at the end of the body' : `at character ${this.pos}`;
  }

  skipWhitespace(): void {
    const text = this.text;
    let pos = this.pos;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) pos++;
      else break;
    }
    this.pos = pos;
  }

  value(depth: number): JsonNode {
    this.skipWhitespace();
    const c = this.text.charCodeAt(this.pos);
    switch (c) {
      case 0x7b: // {
        return this.object(depth + 1);
      case 0x5b: // [
        return this.array(depth + 1);
      case 0x22: // "
        return this.string();
      case 0x74: // t
        return this.literal('true');
      case 0x66: // f
        return this.literal('false');
      case 0x6e: // n
        return this.literal('null');
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
        if (Number.isNaN(c)) this.fail('the body ends where a value was expected');
        return this.fail(`unexpected character '${this.text[this.pos]}' ${this.where()}`);
    }
  }

  tooDeep(): never {
    throw new InvalidTaskError('body', `nested deeper than ${MAX_DEPTH} levels (the limit, the task object and its payload included)`);
  }

  object(depth: number): JsonNode {
    if (depth > MAX_DEPTH) this.tooDeep();
    const start = this.pos;
    this.pos++;
    const members: JsonMember[] = [];
    let isText = true;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return { kind: 'object', start, end: this.pos, isText, members };
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== 0x22) this.fail(`expected a key in quotes ${this.where()}`);
      const key = this.string();
      this.skipWhitespace();
      if (this.text.charCodeAt(this.pos) !== 0x3a) this.fail(`expected ':' after a key ${this.where()}`);
      this.pos++;
      const value = this.value(depth);
      members.push({ key: key.value, keyIsText: key.isText, value });
      isText = isText && key.isText && value.isText;
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x2c) continue;
      if (c === 0x7d) return { kind: 'object', start, end: this.pos, isText, members };
      this.pos--;
      this.fail(`expected ',' or '}' ${this.where()}`);
    }
  }

  array(depth: number): JsonNode {
    if (depth > MAX_DEPTH) this.tooDeep();
    const start = this.pos;
    this.pos++;
    let isText = true;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return { kind: 'array', start, end: this.pos, isText };
    }
    for (;;) {
      const value = this.value(depth);
      isText = isText && value.isText;
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x2c) continue;
      if (c === 0x5d) return { kind: 'array', start, end: this.pos, isText };
      this.pos--;
      this.fail(`expected ',' or ']' ${this.where()}`);
    }
  }

  string(): JsonNode & { kind: 'string' } {
    const text = this.text;
    const start = this.pos;
    let pos = start + 1;
    let chunkStart = pos;
    let value = '';
    let escaped = false;
    for (;;) {
      if (pos >= text.length) {
        this.pos = pos;
        this.fail('a string is not closed');
      }
      const c = text.charCodeAt(pos);
      if (c === 0x22) break;
      if (c < 0x20) {
        this.pos = pos;
        this.fail(`a control character (U+${c.toString(16).padStart(4, '0').toUpperCase()}) must be escaped in a string ${this.where()}`);
      }
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      escaped = true;
      value += text.slice(chunkStart, pos);
      const e = text[pos + 1];
      switch (e) {
        case '"': value += '"'; pos += 2; break;
        case '\\': value += '\\'; pos += 2; break;
        case '/': value += '/'; pos += 2; break;
        case 'b': value += '\b'; pos += 2; break;
        case 'f': value += '\f'; pos += 2; break;
        case 'n': value += '\n'; pos += 2; break;
        case 'r': value += '\r'; pos += 2; break;
        case 't': value += '\t'; pos += 2; break;
        case 'u': {
          const hex = text.slice(pos + 2, pos + 6);
          if (!/^[0-9A-Fa-f]{4}$/.test(hex)) {
            this.pos = pos;
            this.fail(`a \\u escape needs four hex digits ${this.where()}`);
          }
          value += String.fromCharCode(parseInt(hex, 16));
          pos += 6;
          break;
        }
        default:
          this.pos = pos;
          this.fail(`'\\${e ?? ''}' is not a JSON escape ${this.where()}`);
      }
      chunkStart = pos;
    }
    value += text.slice(chunkStart, pos);
    this.pos = pos + 1;
    // Unescaped text was valid UTF-8, so only escapes can spell an unpaired surrogate.
    return { kind: 'string', start, end: this.pos, value, isText: !escaped || isWellFormed(value) };
  }

  number(): JsonNode {
    const text = this.text;
    const start = this.pos;
    let pos = start;
    const digit = (i: number) => {
      const c = text.charCodeAt(i);
      return c >= 0x30 && c <= 0x39;
    };
    if (text.charCodeAt(pos) === 0x2d) pos++;
    if (text.charCodeAt(pos) === 0x30) {
      pos++;
    } else if (digit(pos)) {
      while (digit(pos)) pos++;
    } else {
      this.pos = pos;
      this.fail(`a number needs a digit ${this.where()}`);
    }
    if (text.charCodeAt(pos) === 0x2e) {
      pos++;
      if (!digit(pos)) {
        this.pos = pos;
        this.fail(`a number needs a digit after '.' ${this.where()}`);
      }
      while (digit(pos)) pos++;
    }
    const e = text.charCodeAt(pos);
    if (e === 0x65 || e === 0x45) {
      pos++;
      const sign = text.charCodeAt(pos);
      if (sign === 0x2b || sign === 0x2d) pos++;
      if (!digit(pos)) {
        this.pos = pos;
        this.fail(`a number needs a digit in its exponent ${this.where()}`);
      }
      while (digit(pos)) pos++;
    }
    this.pos = pos;
    return { kind: 'number', start, end: pos, raw: text.slice(start, pos), isText: true };
  }

  literal(word: 'true' | 'false' | 'null'): JsonNode {
    const start = this.pos;
    if (this.text.startsWith(word, start)) {
      this.pos += word.length;
      return { kind: word, start, end: this.pos, isText: true };
    }
    return this.fail(`'${this.text.slice(start, start + word.length)}' is an invalid JSON literal ${this.where()}`);
  }
}

/**
 * Scans one JSON text (surrounding whitespace allowed, nothing else) into nodes.
 * @throws InvalidTaskError on field `body`: not valid JSON, or nested deeper than {@link MAX_DEPTH}.
 */
export function scanJson(text: string): JsonNode {
  const scanner = new Scanner(text);
  const root = scanner.value(0);
  scanner.skipWhitespace();
  if (scanner.pos !== text.length) scanner.fail(`'${text[scanner.pos]}' after the end of the JSON value ${scanner.where()}`);
  return root;
}

/** The member of an object with this key, if any (the first; callers have rejected repeated keys). */
export function member(node: JsonNode & { kind: 'object' }, key: string): JsonNode | undefined {
  for (const m of node.members) if (m.key === key) return m.value;
  return undefined;
}
