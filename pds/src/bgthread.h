/* pds/src/bgthread.h: background threads yield to the request path.
 *
 * The flusher (account files) and the checkpointer (service database) do bulk work whose
 * timing is free; the workers, the loop and the sequencer answer requests. On a busy 2-core
 * machine the background threads, at the same priority, took CPU while a write waited to be
 * sequenced: measured on the pds write benchmark, nice +5 for them moved p99 from 9.3 to 8.5 ms
 * (and, since they then run less often, each runs bigger batches). Raising the request threads
 * instead would need privileges; lowering these does not. */
#ifndef PDS_BGTHREAD_H
#define PDS_BGTHREAD_H

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PDS_BG_NICE 5

/* Lowers the calling thread's priority (Linux: a thread's nice value is its own). Best
 * effort: a refusal changes nothing else. */
static inline void pds_thread_background(void)
{
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), PDS_BG_NICE);
}

#endif
