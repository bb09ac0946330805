// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Child: the tiny contract Probe deploys with CREATE / CREATE2.
contract Child {
    event Killed(address indexed to, uint256 amount);

    constructor() payable {}

    receive() external payable {}

    /// @notice A constant answer, to tell that the code is there.
    function ping() external pure returns (uint256) {
        return 42;
    }

    /// @notice SELFDESTRUCT sending the whole balance to `to`. Under Cancun (EIP-6780) the
    ///         account is removed only when this runs in the transaction that created it;
    ///         otherwise only the balance moves and the code and storage stay.
    function kill(address payable to) external {
        emit Killed(to, address(this).balance);
        selfdestruct(to);
    }
}

/// @title Probe: one contract exercising EVM features for differential tests.
/// @dev Probe declares no state variables: `setSlot`/`getSlot` address raw storage slots, so
///      `eth_getStorageAt(probe, k)` reads exactly what `setSlot(k, v)` wrote.
contract Probe {
    error ProbeError(uint256 code);

    event Emitted(uint256 indexed index, address indexed sender, bytes32 indexed tag, uint256 value);
    event SlotSet(uint256 indexed key, uint256 value);
    event ChildCreated(address indexed child, bytes32 salt);

    // ---- reverts -------------------------------------------------------------------------

    /// @notice Reverts with Error(string) carrying `reason`.
    function revertWithReason(string calldata reason) external pure {
        revert(reason);
    }

    /// @notice Reverts with the custom error ProbeError(code).
    function revertWithCustom(uint256 code) external pure {
        revert ProbeError(code);
    }

    /// @notice Returns 100 / x; x == 0 reverts with Panic(0x12).
    function panicDivZero(uint256 x) external pure returns (uint256) {
        return 100 / x;
    }

    // ---- logs ----------------------------------------------------------------------------

    /// @notice Emits `n` Emitted events: topics [sig, i, msg.sender, keccak256(abi.encode(i))],
    ///         data abi.encode(i * i).
    function emitMany(uint256 n) external {
        for (uint256 i = 0; i < n; ++i) {
            emit Emitted(i, msg.sender, keccak256(abi.encode(i)), i * i);
        }
    }

    // ---- storage -------------------------------------------------------------------------

    /// @notice SSTORE v at raw slot k (and emit SlotSet(k, v)).
    function setSlot(uint256 k, uint256 v) external {
        assembly {
            sstore(k, v)
        }
        emit SlotSet(k, v);
    }

    /// @notice SLOAD of raw slot k.
    function getSlot(uint256 k) external view returns (uint256 v) {
        assembly {
            v := sload(k)
        }
    }

    // ---- transient storage (EIP-1153) ----------------------------------------------------

    /// @notice TSTORE v at transient slot 0, then TLOAD it back; returns v.
    function transientRoundTrip(uint256 v) external returns (uint256 r) {
        assembly {
            tstore(0, v)
            r := tload(0)
        }
    }

    /// @notice TLOAD of transient slot k: 0 in any new transaction (transient storage does not
    ///         outlive the transaction that wrote it).
    function transientLoad(uint256 k) external view returns (uint256 r) {
        assembly {
            r := tload(k)
        }
    }

    // ---- CREATE2 and SELFDESTRUCT --------------------------------------------------------

    /// @notice Deploys a Child with CREATE2 and `salt`; returns its address (= predict(salt)).
    ///         The same salt twice reverts (address collision).
    function create2Child(bytes32 salt) external returns (address child) {
        child = address(new Child{salt: salt}());
        emit ChildCreated(child, salt);
    }

    /// @notice The CREATE2 address of a Child deployed by this contract with `salt`.
    function predict(bytes32 salt) external view returns (address) {
        bytes32 h = keccak256(
            abi.encodePacked(bytes1(0xff), address(this), salt, keccak256(type(Child).creationCode))
        );
        return address(uint160(uint256(h)));
    }

    /// @notice Creates a Child (CREATE, funded with msg.value) and has it SELFDESTRUCT to
    ///         msg.sender in the same transaction: under EIP-6780 the child account is gone
    ///         afterwards (no code, no balance) and msg.sender gets msg.value back.
    function selfDestructNew() external payable returns (address child) {
        Child c = new Child{value: msg.value}();
        child = address(c);
        emit ChildCreated(child, bytes32(0));
        c.kill(payable(msg.sender));
    }

    // ---- precompiles ---------------------------------------------------------------------

    /// @notice ecrecover (0x01) through Solidity's builtin: address(0) for an invalid signature.
    function ecrecoverCall(bytes32 h, uint8 v, bytes32 r, bytes32 s) external pure returns (address) {
        return ecrecover(h, v, r, s);
    }

    /// @notice STATICCALL to 0x02 (SHA-256) with `input`.
    function sha256Call(bytes calldata input) external view returns (bool ok, bytes memory out) {
        return _static(address(0x02), input);
    }

    /// @notice STATICCALL to 0x03 (RIPEMD-160) with `input`: 32 bytes, left-padded.
    function ripemdCall(bytes calldata input) external view returns (bool ok, bytes memory out) {
        return _static(address(0x03), input);
    }

    /// @notice STATICCALL to 0x04 (identity) with `input`.
    function identityCall(bytes calldata input) external view returns (bool ok, bytes memory out) {
        return _static(address(0x04), input);
    }

    /// @notice STATICCALL to 0x05 (MODEXP, EIP-198) with `input`.
    function modexpCall(bytes calldata input) external view returns (bool ok, bytes memory out) {
        return _static(address(0x05), input);
    }

    /// @notice STATICCALL to 0x06 (alt_bn128 ADD) with `input`.
    function bn256Add(bytes calldata input) external view returns (bool ok, bytes memory out) {
        return _static(address(0x06), input);
    }

    /// @notice STATICCALL to 0x07 (alt_bn128 MUL) with `input`.
    function bn256Mul(bytes calldata input) external view returns (bool ok, bytes memory out) {
        return _static(address(0x07), input);
    }

    /// @notice STATICCALL to 0x08 (alt_bn128 pairing check) with `input`.
    function bn256Pairing(bytes calldata input) external view returns (bool ok, bytes memory out) {
        return _static(address(0x08), input);
    }

    /// @notice STATICCALL to 0x09 (BLAKE2 F, EIP-152) with `input` (213 bytes when well-formed).
    function blake2fCall(bytes calldata input) external view returns (bool ok, bytes memory out) {
        return _static(address(0x09), input);
    }

    /// @notice STATICCALL to 0x0a (KZG point evaluation, EIP-4844) with `input` (192 bytes).
    function pointEvaluation(bytes calldata input) external view returns (bool ok, bytes memory out) {
        return _static(address(0x0a), input);
    }

    /// @notice STATICCALL to any address with `input`, e.g. a precompile not listed above.
    function rawStaticcall(address to, bytes calldata input) external view returns (bool ok, bytes memory out) {
        return _static(to, input);
    }

    function _static(address to, bytes calldata input) private view returns (bool ok, bytes memory out) {
        (ok, out) = to.staticcall(input);
    }

    // ---- block context -------------------------------------------------------------------

    /// @notice The block context; prevBlockHash = blockhash(block.number - 1) (0 at block 0).
    function blockInfo()
        external
        view
        returns (
            uint256 number,
            uint256 timestamp,
            address coinbase,
            uint256 gaslimit,
            uint256 basefee,
            uint256 chainid,
            uint256 prevrandao,
            bytes32 prevBlockHash
        )
    {
        number = block.number;
        timestamp = block.timestamp;
        coinbase = block.coinbase;
        gaslimit = block.gaslimit;
        basefee = block.basefee;
        chainid = block.chainid;
        prevrandao = block.prevrandao;
        prevBlockHash = number == 0 ? bytes32(0) : blockhash(number - 1);
    }

    /// @notice Cancun blob context: BLOBBASEFEE and BLOBHASH(index) (0 outside a blob tx).
    function blobInfo(uint256 index) external view returns (uint256 blobBaseFee, bytes32 blobHash) {
        blobBaseFee = block.blobbasefee;
        blobHash = blobhash(index);
    }

    // ---- gas -----------------------------------------------------------------------------

    /// @notice Runs `loops` rounds of keccak256 chaining; returns the final hash and gasleft()
    ///         at the end. Gas used grows linearly with `loops`.
    function gasLeftBurn(uint256 loops) external view returns (bytes32 acc, uint256 left) {
        for (uint256 i = 0; i < loops; ++i) {
            acc = keccak256(abi.encode(acc, i));
        }
        left = gasleft();
    }
}
