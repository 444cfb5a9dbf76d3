/* The Raft core lands here; see include/ddialab/raft.h. */
