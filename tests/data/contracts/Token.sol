// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Token: a plain, self-contained ERC-20 for tests (no imports).
/// @notice The whole initial supply is minted to the deployer. `transfer` reverts with the
///         custom error `InsufficientBalance`; `transferFrom` reverts with the string reason
///         "ERC20: insufficient allowance" (checked before the balance, which then reverts with
///         `InsufficientBalance` as in `transfer`).
contract Token {
    string public constant name = "Test Token";
    string public constant symbol = "TST";
    uint8 public constant decimals = 18;

    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error InsufficientBalance(uint256 available, uint256 required);

    constructor(uint256 initialSupply) {
        totalSupply = initialSupply;
        balanceOf[msg.sender] = initialSupply;
        emit Transfer(address(0), msg.sender, initialSupply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        require(allowed >= value, "ERC20: insufficient allowance");
        if (allowed != type(uint256).max) {
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _transfer(from, to, value);
        return true;
    }

    function _transfer(address from, address to, uint256 value) private {
        uint256 available = balanceOf[from];
        if (available < value) {
            revert InsufficientBalance(available, value);
        }
        unchecked {
            balanceOf[from] = available - value;
        }
        // Cannot overflow: the sum of all balances is totalSupply.
        unchecked {
            balanceOf[to] += value;
        }
        emit Transfer(from, to, value);
    }
}
