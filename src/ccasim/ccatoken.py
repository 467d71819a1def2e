"""The CCA attestation token's format (A7.2.3), shared by whoever makes a token (EL3's
platform token, the RMM's realm token) and whoever reads one (``ccasim.attest``).

A token is a CBOR-tagged collection of two COSE_Sign1 tokens: the CCA platform token and the
realm token, whose claims are CBOR maps keyed by these integers.
"""

#: The collection: RMM 1.0's tag 399 map, or the newer CMW collection (tag 907).
CCA_TOKEN_TAG = 399
CMW_COLLECTION_TAG = 907
COLLECTION_PLATFORM = 44234
COLLECTION_REALM = 44241

# Realm claims (A7.2.3.1)
REALM_CHALLENGE = 10
REALM_PROFILE_CLAIM = 265
REALM_RPV = 44235
REALM_HASH_ALGO = 44236
REALM_RAK = 44237
REALM_RIM = 44238
REALM_REMS = 44239  # REM0..REM3, which RSI indexes 1..4
REALM_RAK_HASH_ALGO = 44240
REALM_PROFILE = "tag:arm.com,2023:realm#1.0.0"

# CCA platform claims (A7.2.3.2)
PLATFORM_PROFILE_CLAIM = 265
PLATFORM_CHALLENGE = 10
PLATFORM_IMPLEMENTATION_ID = 2396
PLATFORM_INSTANCE_ID = 256
PLATFORM_CONFIG = 2401
PLATFORM_LIFECYCLE = 2395
PLATFORM_SW_COMPONENTS = 2399
PLATFORM_VERIFICATION_SERVICE = 2400
PLATFORM_HASH_ALGO = 2402
PLATFORM_PROFILE = "tag:arm.com,2023:cca_platform#1.0.0"
#: The profile of older platform tokens (TF-M's legacy format).
PLATFORM_PROFILE_LEGACY = "http://arm.com/CCA-SSD/1.0.0"

# Fields of one software component of the platform (A7.2.3.2.7)
SW_MEASUREMENT_TYPE = 1
SW_MEASUREMENT_VALUE = 2
SW_VERSION = 4
SW_SIGNER_ID = 5
SW_HASH_ALGO = 6
