/*
 * thread: the threads of the engine and of serve. Signals are the main
 * thread's (it owns the cancel flag and the handlers), so every other
 * thread starts with all of them blocked.
 */
#ifndef PREWCTL_THREAD_H
#define PREWCTL_THREAD_H

#include <pthread.h>

/* pthread_create(t, NULL, fn, arg), fn running with every signal blocked. */
int	 thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
