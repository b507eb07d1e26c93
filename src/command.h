/*-------------------------------------------------------------------------
 *
 * command.h
 *	  The commands kommander stores in NORMAL log entries, and their
 *	  encoding (a protobuf Command, proto/kommander.proto).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/command.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_COMMAND_H
#define KOMMANDER_COMMAND_H

#define KMD_COMMAND_VERSION 1

typedef enum KmdCommandKind
{
	KMD_CMD_ROWS = 1,			/* payload: jsonb command of kmd_propose */
	KMD_CMD_DDL = 2,			/* payload: SQL text (system partition);
								 * args[0]: the role that runs it */
	KMD_CMD_REGISTER_TABLE = 3, /* args[0]: qualified table name */
	KMD_CMD_REGISTER_APPLIER = 4,	/* args[0]: name, args[1]: regprocedure */
	KMD_CMD_NODE_ADD = 5,		/* args[0]: name, args[1]: conninfo,
								 * args[2] (optional): peer role */
	KMD_CMD_NODE_PROMOTE = 6,	/* args[0]: name, args[1]: its node id when
								 * the call checked its lag (older entries
								 * have none) */
	KMD_CMD_NODE_REMOVE = 7,	/* args[0]: name, args[1]: the step,
								 * KMD_REMOVE_MARK (a member becomes
								 * 'removing') or KMD_REMOVE_DROP (a removing
								 * node leaves the roster); without args[1]
								 * (older entries) the roster says which */
	KMD_CMD_ALLOC_PARTITION = 8,	/* system partition: a new partition id */
	KMD_CMD_SPLIT = 9,			/* args[0]: new partition id, args[1]: hash
								 * where the new (right) half starts */
	KMD_CMD_FREEZE = 10,		/* in the right partition's log, before a merge */
	KMD_CMD_MERGE = 11,			/* in the left partition's log; args[0]: right
								 * partition id, args[1]: its freeze index */
	KMD_CMD_BARRIER = 12,		/* in a user partition's log, proposed by its
								 * leader: args[0]: the system partition index
								 * of the DDL or registration it orders this
								 * log with (barrier.c) */
	KMD_CMD_LEASE = 13,			/* args[0]: grant, keepalive, revoke or expire;
								 * args[1]: lease id; args[2]: TTL in ms
								 * (grant), the renewing entry (expire) */
	KMD_CMD_MAX = KMD_CMD_LEASE
} KmdCommandKind;

/* The steps of a removal (KMD_CMD_NODE_REMOVE's args[1]) */
#define KMD_REMOVE_MARK "mark"
#define KMD_REMOVE_DROP "drop"

#define KMD_CMD_MAX_ARGS 4

/*
 * KmdCommand.rules: what the proposer of a command did, or asked for.
 * WIDE_DEFAULTS: it decided the defaults holding a time inside composite
 * and multirange values too (rows.c, time_type_of).  CONTAINED_CODE: the
 * code its command runs is refused DDL, advisory locks and values that
 * are one node's (keyrange.c, guard.c); an entry proposed before those
 * refusals applies as it did, on every node, whatever version applies it.
 * APPLY_CHECKS: checked again where it is applied, against the tables as
 * they are at its point of the log: a leased row's key (lease.c); for a
 * kmd_ddl statement, the control tables' keys and replica identities
 * (syscommand.c), the routing keys of rows leases hold and the types
 * their keys have (lease_tables.c).  IDLE_FORGET: a lease entry
 * "forget" of an idle partition's leader (lease_clock.c), which forgets
 * old request outcomes (requests.c).
 */
#define KMD_RULE_WIDE_DEFAULTS 0x1
#define KMD_RULE_CONTAINED_CODE 0x2
#define KMD_RULE_APPLY_CHECKS 0x4
#define KMD_RULE_IDLE_FORGET 0x8
/* an entry asking for another stops its partition here (wire.c) */
#define KMD_RULES_KNOWN (KMD_RULE_WIDE_DEFAULTS | KMD_RULE_CONTAINED_CODE | \
						 KMD_RULE_APPLY_CHECKS | KMD_RULE_IDLE_FORGET)

typedef struct KmdCommand
{
	uint32		kind;
	int32		origin_node;
	int32		origin_slot;	/* -1: nobody waits */
	uint32		origin_gen;
	uint64		origin_boot;	/* the origin's run: an entry outlives it */
	int64		proposed_at;	/* TimestampTz the proposer decided; 0: none */
	int64		request_retention;	/* ms the outcomes of request ids are
									 * kept, by the proposer; 0: none */
	uint64		generation;
	uint64		sys_index;
	uint32		rules;			/* KMD_RULE_*, of the command's proposer */
	char	   *key;			/* NUL-terminated, may be "" */
	char	   *payload;		/* NUL-terminated copy */
	uint32		payload_len;
	int			n_args;
	char	   *args[KMD_CMD_MAX_ARGS];
} KmdCommand;

/* Encode into a palloc'd buffer. */
extern char *kmd_command_encode(const KmdCommand *cmd, uint32 *len);

/* Decode (palloc'd strings); false on malformed data. */
extern bool kmd_command_decode(const char *data, uint32 len, KmdCommand *cmd);

/*
 * Why kmd_command_decode refuses `data' ("its command version 2 is unknown
 * to this node, ..."), palloc'd; NULL if it does not.
 */
extern char *kmd_command_problem(const char *data, uint32 len);

#endif							/* KOMMANDER_COMMAND_H */
