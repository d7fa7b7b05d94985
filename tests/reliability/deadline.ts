// Work that must finish within a deadline: past it the caller gets a TimeoutError and counts a hang.

export class TimeoutError extends Error {}

export async function within<T>(ms: number, work: Promise<T>, what = "no answer"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new TimeoutError(`${what} within ${ms} ms`)), ms)));
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
