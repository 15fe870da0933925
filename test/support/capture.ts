/** Captures what a Lambda entry prints (Powertools writes EMF metrics to stdout, error lines to stderr). */
export function captureStream(stream: NodeJS.WriteStream): { lines: string[]; restore: () => void } {
  const lines: string[] = [];
  const write = stream.write.bind(stream);
  stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    lines.push(String(chunk));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  });
  return { lines, restore: () => (stream.write = write) };
}

export const captureStdout = (): { lines: string[]; restore: () => void } => captureStream(process.stdout);
