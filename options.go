package distrlock

// The options of NewDBManager, DoExclusively/Hold and NewElection, and their defaults.

import "time"

// DefaultTableName is the name of the table that stores the locks unless [WithTableName] says otherwise.
const DefaultTableName = "distributed_locks"

// DBManagerOption configures [NewDBManager].
type DBManagerOption func(*dbManagerOptions)

type dbManagerOptions struct {
	tableName              string
	backoffMin, backoffMax time.Duration
	notifier               Notifier
	notifierSet            bool
	galera                 bool
	observer               Observer
	logger                 Logger
}

// WithWaitBackoff bounds the sleeps between the reads of a waiting acquire: half as long as the holder has
// held the lock so far, times the waiter's place in the queue, within [minDelay, maxDelay], with jitter.
// The defaults are [DefaultWaitMinBackoff] and [DefaultWaitMaxBackoff]; minDelay must be positive and
// maxDelay at least minDelay.
func WithWaitBackoff(minDelay, maxDelay time.Duration) DBManagerOption {
	return func(o *dbManagerOptions) { o.backoffMin, o.backoffMax = minDelay, maxDelay }
}

// WithTableName sets the table that stores the locks: a plain identifier ("locks") or a schema-qualified one
// ("app.locks"), each part 1 to 63 ASCII letters, digits or underscores, not starting with a digit. The name
// is quoted in every statement, so it is case-sensitive. An empty name selects [DefaultTableName], as in
// go-dbkit; any other name that does not fit makes NewDBManager return [ErrInvalidTableName].
func WithTableName(name string) DBManagerOption {
	return func(o *dbManagerOptions) { o.tableName = name }
}

// Defaults of [WithWaitBackoff].
const (
	DefaultWaitMinBackoff = 2 * time.Millisecond
	DefaultWaitMaxBackoff = 50 * time.Millisecond
)

// WithNotifier makes releases through the manager publish the key on n's channel when others wait for it
// (an election's term's always), and lets its waiters sleep until a notice instead of polling while n listens.
// PostgreSQL dialects only; another dialect, a nil notifier or an invalid channel makes [NewDBManager]
// return [ErrInvalidOption]. Default: none.
func WithNotifier(n Notifier) DBManagerOption {
	return func(o *dbManagerOptions) { o.notifier, o.notifierSet = n, true }
}

// WithGalera makes every statement of the manager but the DDL wait until the node it reaches has applied
// what the cluster committed before it (MariaDB's wsrep_sync_wait, for this statement only), so that locks
// read, extended and released through any node of a MariaDB Galera Cluster are seen as they are; see
// docs/galera.md. [DialectMariaDB] only, else [NewDBManager] returns [ErrInvalidOption]. Default: off.
func WithGalera() DBManagerOption {
	return func(o *dbManagerOptions) { o.galera = true }
}

// Defaults of the DoOption values.
const (
	// DefaultLockTTL is the lease DoExclusively takes unless WithLockTTL says otherwise.
	DefaultLockTTL = time.Minute
	// DefaultReleaseTimeout bounds the release after the function returns unless WithReleaseTimeout says otherwise.
	DefaultReleaseTimeout = 5 * time.Second
	// DefaultSafetyMarginDivisor: unless WithSafetyMargin says otherwise the margin is TTL/10.
	DefaultSafetyMarginDivisor = 10
)

// DoOption configures [DBLock.DoExclusively], [DoExclusively], [DBLock.Hold] and [DBLock.Keep].
type DoOption func(*doOptions)

type doOptions struct {
	lockTTL                time.Duration
	periodicExtendInterval time.Duration
	releaseTimeout         time.Duration
	safetyMargin           time.Duration
	marginSet              bool
	logger                 Logger
	intervalTooLong        bool          // the interval is not shorter than TTL less margin: a warning
	maxWait                time.Duration // 0: try once
	owner                  string
	ownerSet               bool
	data                   string
	dataSet                bool
	atLeast                time.Duration // WithLockAtLeastFor
	token                  string        // WithToken; "": a new random token per acquisition
	tokenSet               bool
	announce               bool // the release notifies a Notifier's channel even when no ticket waits (elections)
}

// announceRelease makes a lease's release publish the key to a [Notifier] whoever waits: an election's
// standbys and observers wait without a ticket in the key's queue, which alone makes a release notify.
func announceRelease() DoOption {
	return func(o *doOptions) { o.announce = true }
}

// WithWait makes the acquisition wait while another holder has the lock, for at most maxWait or until the
// context ends ([WaitForever] waits for the context alone); see [DBLock.AcquireWait]. By default the
// acquisition is tried once and fails with [ErrLockAlreadyAcquired], as in go-dbkit.
func WithWait(maxWait time.Duration) DoOption {
	return func(o *doOptions) { o.maxWait = maxWait }
}

// WithOwner stores owner with this acquisition (see [DBLock.Owner]; "" stores none) without changing the
// DBLock's own Owner, which is used by default.
func WithOwner(owner string) DoOption {
	return func(o *doOptions) { o.owner, o.ownerSet = owner, true }
}

// WithData stores data with this acquisition (see [DBLock.Data]; "" stores none) without changing the
// DBLock's own Data, which is used by default.
func WithData(data string) DoOption {
	return func(o *doOptions) { o.data, o.dataSet = data, true }
}

// WithLockTTL sets the lease duration; the default (also selected by 0, as in go-dbkit) is [DefaultLockTTL].
func WithLockTTL(ttl time.Duration) DoOption {
	return func(o *doOptions) { o.lockTTL = ttl }
}

// WithToken makes the acquisition use token (1 to [MaxTokenLength] bytes of UTF-8 without NUL, else
// [ErrInvalidToken]) instead of a new random one, as [DBLock.AcquireWithStaticToken] does: a process that
// restarts with the same token takes back the lease it still holds, with a new, larger fence. Keep the token
// secret: it releases the lock. Default: a new random token per acquisition.
func WithToken(token string) DoOption {
	return func(o *doOptions) { o.token, o.tokenSet = token, true }
}

// WithPeriodicExtendInterval sets how often the lease is extended while the function runs; the default
// (also selected by 0, as in go-dbkit) is half the TTL. An interval not shorter than the TTL less the safety
// margin is accepted, as go-dbkit did, with a logged warning: the lease is then lost (and the function's
// context cancelled) before the first extend.
func WithPeriodicExtendInterval(interval time.Duration) DoOption {
	return func(o *doOptions) { o.periodicExtendInterval = interval }
}

// WithReleaseTimeout bounds the release that follows the function; the default (also selected by 0, as in
// go-dbkit) is [DefaultReleaseTimeout].
// The release runs even when the caller's context has ended.
func WithReleaseTimeout(timeout time.Duration) DoOption {
	return func(o *doOptions) { o.releaseTimeout = timeout }
}

// WithSafetyMargin sets how long before the lease may end the function's context is cancelled when no
// extension has succeeded; the default is TTL/[DefaultSafetyMarginDivisor]. It is the time the function
// has to notice the cancellation and stop before another process can take the lock.
func WithSafetyMargin(margin time.Duration) DoOption {
	return func(o *doOptions) { o.safetyMargin, o.marginSet = margin, true }
}

// WithLockAtLeastFor keeps the lock taken until at least d after its acquisition, on the database's clock,
// when the work ends sooner: a job that every replica starts on a schedule runs on one of them, and not again
// within d (ShedLock's lockAtLeastFor). The release is still one statement; a lease lost earlier is not
// restored. Default 0; d outside [0, [MaxTTL]], or d > 0 with [WithToken] or [WithWait], is [ErrInvalidOption].
func WithLockAtLeastFor(d time.Duration) DoOption {
	return func(o *doOptions) { o.atLeast = d }
}

// WithLogger sets where failed extensions and releases are reported; by default nothing is logged. For a
// *slog.Logger pass [SlogLogger](l), which also logs acquires, waits and releases with structured attributes.
func WithLogger(logger Logger) DoOption {
	return func(o *doOptions) { o.logger = logger }
}

// Defaults of the ElectionOption values.
const (
	// DefaultElectionTTL is a leader's lease unless WithElectionTTL says otherwise: a leader that dies is
	// replaced within it.
	DefaultElectionTTL = 15 * time.Second
	// DefaultElectionPollInterval is how often standbys and observers read the election unless
	// WithElectionPollInterval says otherwise.
	DefaultElectionPollInterval = time.Second
)

// ElectionOption configures [DBManager.NewElection].
type ElectionOption func(*electionOptions)

type electionOptions struct {
	ttl             time.Duration
	poll            time.Duration
	identity        string
	identitySet     bool
	releaseOnCancel bool
	logger          Logger
}

// WithElectionTTL sets a leader's lease, which its heartbeat extends every TTL/2; default
// [DefaultElectionTTL]. It must be in [[MinTTL], [MaxTTL]].
func WithElectionTTL(ttl time.Duration) ElectionOption {
	return func(o *electionOptions) { o.ttl = ttl }
}

// WithElectionPollInterval sets how often a standby in [Election.Campaign] and an [Election.Observe]
// read the election; default [DefaultElectionPollInterval]. It must be positive.
func WithElectionPollInterval(d time.Duration) ElectionOption {
	return func(o *electionOptions) { o.poll = d }
}

// WithIdentity sets the identity stored as the lock's owner while this candidate leads (see
// [LeaderInfo.Identity]); default "<host name>/<process id>". At most [MaxOwnerLength] bytes of UTF-8
// without NUL; "" stores none.
func WithIdentity(identity string) ElectionOption {
	return func(o *electionOptions) { o.identity, o.identitySet = identity, true }
}

// WithReleaseOnCancel says whether the end of [Election.Run]'s context resigns (true, the default: a
// standby takes over at once) or lets the lease run out after the TTL (false).
func WithReleaseOnCancel(release bool) ElectionOption {
	return func(o *electionOptions) { o.releaseOnCancel = release }
}

// WithElectionLogger sets where failed extends and releases of the leader's lease and failed campaigns
// of [Election.Run] are reported; by default nothing is logged.
func WithElectionLogger(logger Logger) ElectionOption {
	return func(o *electionOptions) { o.logger = logger }
}
